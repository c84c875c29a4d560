"""The playbooks' variables: every one a playbook reads is specified (a role's meta/argument_specs.yml, the README
table), and a wrong one is refused once, before any host is touched (or, for what only the host can tell, in
preflight before anything is stopped), in one short line that starts with the variable's name -- never an
argument-spec dump. Real ansible-playbook runs against localhost; the wrong ones end in seconds."""
import glob
import hashlib
import json
import os
import re
import subprocess
import tarfile
import uuid

import pytest
import yaml

from conftest import REPO, VENV_PYTHON, ansible_env

from ansible_collections.residue.purge.plugins.module_utils._inputs import VARIABLES

NOBODY = 65534
# set by the playbooks themselves, never by their user: the run record, the audit flag, per-host bookkeeping
INTERNAL = {"residue_audit", "residue_completed", "residue_playbook", "residue_run", "residue_summary"}


def _sources():
    files = glob.glob(os.path.join(REPO, "playbooks", "**", "*.yml"), recursive=True)
    files += glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml"))
    files += glob.glob(os.path.join(REPO, "roles", "*", "defaults", "*.yml"))
    files += glob.glob(os.path.join(REPO, "roles", "*", "templates", "*"))
    return files


def read_variables():
    """Every residue_* name in the playbooks and roles that is not a filter (residue.purge.residue_md)."""
    found = {}
    for path in _sources():
        with open(path) as f:
            text = re.sub(r"\{#.*?#\}", "", f.read(), flags=re.S)  # Jinja comments name filters
            for name in re.findall(r"(?<![.\w])(residue_[a-z_]+)", text):
                found.setdefault(name, set()).add(os.path.relpath(path, REPO))
    return found


def specified():
    names = set()
    for path in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")):
        with open(path) as f:
            for spec in yaml.safe_load(f)["argument_specs"].values():
                names.update(spec.get("options", {}))
    return names


def test_every_variable_a_playbook_reads_is_specified_and_in_the_readme():
    read = read_variables()
    assert set(VARIABLES) <= set(read), "checked but never read: %s" % sorted(set(VARIABLES) - set(read))
    unknown = set(read) - set(VARIABLES) - INTERNAL
    assert not unknown, "read but not checked by check_vars nor internal: %s" % {n: sorted(read[n]) for n in unknown}
    specs = specified()
    missing = [n for n in VARIABLES if n not in specs]
    assert not missing, "in no role's meta/argument_specs.yml: %s" % missing
    with open(os.path.join(REPO, "README.md")) as f:
        readme_rows = set(re.findall(r"^\| `(residue_[a-z_]+)` \|", f.read(), re.M))
    assert not set(VARIABLES) - readme_rows, "not in the README's variable table: %s" % sorted(set(VARIABLES) - readme_rows)
    # an internal name must really be set by the playbooks (so the list cannot hide a user's variable)
    text = "".join(open(p).read() for p in _sources())
    for name in INTERNAL:
        assert re.search(r"^\s+%s:" % name, text, re.M), name


def playbook(name, tmp_path, extra, inventory=None, timeout=240):
    inv = tmp_path / "inventory.ini"
    inv.write_text(inventory or "localhost ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PYTHON)
    extra = dict({"residue_report_dir": str(tmp_path / "report")}, **extra)
    return subprocess.run(["ansible-playbook", "-i", str(inv), os.path.join(REPO, "playbooks", name + ".yml"),
                           "-e", json.dumps(extra)], env=ansible_env(), capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=str(tmp_path))


def fatal_messages(stdout):
    return [json.loads(line.split("=> ", 1)[1])["msg"] for line in stdout.splitlines() if line.startswith("fatal: ")]


SANDBOX = {"residue_homes": ["/nonexistent-home-is-never-reached"]}


@pytest.mark.parametrize("name,extra,variable,text", [
    ("purge", {}, "residue_targets", "is not set: name the profiles to purge"),
    ("purge", {"residue_targets": []}, "residue_targets", "is empty"),
    ("purge", {"residue_targets": ["open_autoglm", "no_such_tool"]}, "residue_targets",
     "unknown profile(s) no_such_tool; known: "),
    ("audit", {"residue_profiles": {"t": {"paths": ["{nowhere}/t"]}}, "residue_targets": ["t"]}, "residue_profiles",
     "unknown placeholder {nowhere}"),
    ("prune", {"residue_prune_older_than": "soon"}, "residue_prune_older_than", "expected a duration"),
    ("prune", {"residue_prune_max_size": "lots"}, "residue_prune_max_size", "expected a size"),
    ("purge", {"residue_targets": ["open_autoglm"], "residue_backup_dir": "backups"}, "residue_backup_dir",
     "'backups' is not an absolute path"),
    ("audit", {"residue_homes": ["home/alice"]}, "residue_homes", "'home/alice' is not an absolute path"),
    ("restore", {"residue_restore_archive": "run.tar.gz"}, "residue_restore_archive", "is not an absolute path"),
])
def test_a_wrong_variable_is_one_short_line_naming_it_before_any_host_is_touched(tmp_path, name, extra, variable, text):
    proc = playbook(name, tmp_path, dict(SANDBOX, **extra) if "residue_homes" not in extra else extra)
    assert proc.returncode != 0
    messages = fatal_messages(proc.stdout)
    assert len(messages) == 1, proc.stdout[-3000:]  # once, not once per phase or per module
    assert messages[0].startswith(variable) and text in messages[0], messages
    assert len(messages[0]) < 250 and "\n" not in messages[0], messages[0]
    assert "argument_spec" not in proc.stdout and "Validating arguments" not in proc.stdout, proc.stdout[-3000:]
    assert "Gather the facts" not in proc.stdout  # no host was touched
    assert not (tmp_path / "report").exists()


def test_a_bad_backup_dir_on_the_host_stops_it_in_preflight_before_stop_runs(tmp_path):
    tag = uuid.uuid4().hex[:8]
    home = tmp_path / "home" / "tester"
    residue = home / ".cache" / ("vartest-" + tag)
    (residue / "sub").mkdir(parents=True)
    (residue / "sub" / "weights.bin").write_bytes(b"w" * 1000)
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    (tmp_path / "theirs").mkdir()
    if os.geteuid() == 0:
        os.lchown(str(tmp_path / "link"), NOBODY, NOBODY)
        os.chown(str(tmp_path / "theirs"), NOBODY, NOBODY)
    cases = {  # host: (its residue_backup_dir, what the message says)
        "symlink": (tmp_path / "link" / "bk", "is a symlink owned by"),
        "theirs": (tmp_path / "theirs" / "bk", "belongs to"),
        "protected": (home / ".cache", "is a protected directory"),
        "inside": (residue / "sub" / "bk", "which is to be removed"),
    }
    if os.geteuid() != 0:
        del cases["symlink"], cases["theirs"]
    inventory = "".join("%s ansible_connection=local ansible_python_interpreter=%s residue_backup_dir=%s\n"
                        % (host, VENV_PYTHON, path) for host, (path, _text) in cases.items())
    proc = playbook("purge", tmp_path, {"residue_targets": ["vartest_" + tag], "residue_homes": [str(home)],
                                        "residue_profiles": {"vartest_" + tag: {"paths": ["{user_cache}/vartest-" + tag]}}},
                    inventory=inventory)
    assert proc.returncode != 0
    fleet = json.loads((tmp_path / "report" / "latest" / "fleet.json").read_text())
    hosts = {r["host"]: r for r in fleet["hosts"]}
    assert set(hosts) == set(cases)
    for host, (path, text) in cases.items():
        record = hosts[host]
        assert record["status"] == "failed"
        assert [f["phase"] for f in record["failed"]] == ["preflight"], record["failed"]
        error = record["failed"][0]["error"]
        assert error.startswith("residue_backup_dir: ") and text in error, (host, error)
        assert not record["stopped"] and not record["removed"]
    # as printed (the report shortens long names): one line, short but for the paths it names
    printed = [m for m in fatal_messages(proc.stdout) if m.startswith("residue_backup_dir")]
    assert len(printed) == len(cases), proc.stdout[-3000:]
    for message in printed:
        assert "\n" not in message and len(message.replace(str(tmp_path), "")) < 200, message
    assert "Stop the targets' processes" not in proc.stdout  # no host reached the stop phase
    assert (residue / "sub" / "weights.bin").read_bytes() == b"w" * 1000


def _archive(tmp_path, files):
    path = tmp_path / "backups" / "residue-purge-test.tar.gz"
    path.parent.mkdir()
    with tarfile.open(str(path), "w:gz") as tar:
        for name in files:
            tar.add(str(name), arcname=str(name).lstrip("/"))
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_takes_the_newest_run_with_a_backup_or_names_residue_restore_archive(tmp_path):
    restored = tmp_path / "data" / "restored.txt"
    restored.parent.mkdir()
    restored.write_text("put back")
    archive, sha = _archive(tmp_path, [restored])
    restored.unlink()
    report = tmp_path / "report"

    def record(run, host, backed_up):
        path = report / run / "hosts" / (host + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"host": host, "run_id": run, "backed_up": backed_up}))

    # the purge with a backup, then the idempotent rerun (no backup) that latest points at
    record("20260101T000000Z-purge-1", "backedup", {"path": archive, "sha256": sha, "entries": 2})
    for host in ("backedup", "never"):
        record("20260102T000000Z-purge-2", host, None)
    os.symlink("20260102T000000Z-purge-2", str(report / "latest"))
    inventory = "".join("%s ansible_connection=local ansible_python_interpreter=%s\n" % (h, VENV_PYTHON)
                        for h in ("backedup", "never"))
    proc = playbook("restore", tmp_path, {}, inventory=inventory)
    assert proc.returncode != 0  # the host without any backup fails
    assert restored.read_text() == "put back"
    fleet = json.loads((report / "latest" / "fleet.json").read_text())
    hosts = {r["host"]: r for r in fleet["hosts"]}
    assert hosts["backedup"]["status"] == "ok" and hosts["backedup"]["restored"]["archive"] == archive
    error = hosts["never"]["failed"][0]["error"]
    assert error.startswith("residue_restore_archive is not set") and "backed up never" in error, error
    assert len(error) < 250 and "\n" not in error
