"""playbooks/purge.yml end to end on localhost: a sandbox residue purged, plus a host that cannot be reached
and one whose Python is broken -- both must appear in the fleet report, and the run must fail.

The profile is made up for the test (a random name under a throwaway home), so nothing of the machine matches.
"""
import json
import os
import re
import subprocess
import uuid

from conftest import REPO, SYSTEM_PYTHON, VENV_PYTHON, ansible_env


def run_purge(tmp_path, extra_args=(), with_bare_python=False, env=None):
    tag = uuid.uuid4().hex[:10]
    home = tmp_path / "home" / "tester"
    residue = home / ".cache" / ("labtest-" + tag)
    (residue / "sub").mkdir(parents=True)
    (residue / "sub" / "weights.bin").write_bytes(b"w" * 200000)
    keep = home / ".cache" / ("labtest-" + tag + "-keep")
    keep.mkdir()
    (keep / "data").write_text("must stay")
    report = tmp_path / "report"
    inventory = tmp_path / "inventory.ini"
    hosts = ("good ansible_connection=local ansible_python_interpreter=%s\n"
             "broken ansible_connection=local ansible_python_interpreter=/nonexistent/python3\n"
             "gone ansible_host=residue-lab-no-such-host.invalid ansible_connection=ssh"
             " ansible_ssh_common_args='-o ConnectTimeout=2'\n" % VENV_PYTHON)
    if with_bare_python:  # a Python without psutil: preflight must stop and say how to install it
        bare = tmp_path / "bare-venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(bare)], check=True)
        hosts += "nopsutil ansible_connection=local ansible_python_interpreter=%s\n" % (bare / "bin" / "python3")
    inventory.write_text(hosts)
    extra = {
        "residue_targets": ["labtest_" + tag],
        "residue_profiles": {"labtest_" + tag: {"paths": ["{user_cache}/labtest-" + tag]}},
        "residue_homes": [str(home)],
        "residue_report_dir": str(report),
    }
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), os.path.join(REPO, "playbooks", "purge.yml"),
                           "-e", json.dumps(extra)] + list(extra_args),
                          env=ansible_env(env), capture_output=True, text=True, timeout=300, check=False)
    return proc, residue, keep, report


def module_runs(output, host="good"):
    """The modules run on host, in order, from -vvv output without pipelining."""
    return [m.group(1) for m in re.finditer(r"<%s> EXEC /bin/sh -c '(?!chmod)[^\n]*?AnsiballZ_(\w+)\.py" % host, output)]


def load_run(report):
    latest = report / "latest"
    fleet = json.loads((latest / "fleet.json").read_text())
    return fleet, {r["host"]: r for r in fleet["hosts"]}, latest


def test_every_host_is_reported_and_the_run_fails(tmp_path):
    proc, residue, keep, report = run_purge(tmp_path, with_bare_python=True)
    assert proc.returncode != 0, proc.stdout[-3000:]
    fleet, hosts, latest = load_run(report)
    assert set(hosts) == {"good", "broken", "gone", "nopsutil"}
    assert hosts["nopsutil"]["status"] == "failed"
    assert any("psutil is missing" in f["error"] and "install" in f["error"] for f in hosts["nopsutil"]["failed"])
    assert hosts["good"]["status"] == "ok", hosts["good"]["failed"]
    assert hosts["broken"]["status"] == "failed"
    assert hosts["gone"]["status"] == "unreachable"
    assert not residue.exists() and (keep / "data").read_text() == "must stay"
    removed = hosts["good"]["removed"]
    assert [i["path"] for i in removed] == [str(residue)]
    assert removed[0]["bytes"] >= 200000
    assert hosts["good"]["verified"]["clean"] is True
    failing = {f["host"] for f in fleet["summary"]["failures"]}
    assert failing == {"broken", "gone", "nopsutil"}
    html = (latest / "fleet.html").read_text()
    md = (latest / "fleet.md").read_text()
    for name in ("good", "broken", "gone"):
        assert name in html and name in md
    assert "unreachable" in html and "<svg" in html
    for name in hosts:
        assert json.loads((latest / "hosts" / (name + ".json")).read_text())["host"] == name
    assert "3 of 4 host(s) not done" in proc.stdout


def test_check_mode_changes_nothing_and_reports_the_plan(tmp_path):
    # --limit would also drop the controller-side report play; residue_hosts narrows the hosts instead
    proc, residue, keep, report = run_purge(tmp_path, ["--check", "-e", "residue_hosts=good"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (residue / "sub" / "weights.bin").stat().st_size == 200000
    fleet, hosts, latest = load_run(report)
    assert fleet["run"]["check_mode"] is True
    assert set(hosts) == {"good"}
    assert hosts["good"]["status"] == "preview"
    assert [i["path"] for i in hosts["good"]["removed"]] == [str(residue)]
    assert "Residue purge preview" in proc.stdout and "1 item(s) to remove" in proc.stdout
    assert "What a purge would remove" in (latest / "fleet.md").read_text()


def test_a_host_without_the_residue_skips_the_sweep_steps_and_is_still_verified(tmp_path):
    """Preflight finds nothing of the target: hf_cache, remove and pip_remove are skipped on the controller (no
    module run), open_deleted too (no residue root), and verify's inventory still runs and proves the host clean.
    sweep_only_found=false runs every sweep step again."""
    tag = uuid.uuid4().hex[:10]
    home = tmp_path / "home" / "tester"
    (home / ".cache").mkdir(parents=True)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("good ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PYTHON)
    extra = {"residue_targets": ["labtest_" + tag],
             "residue_profiles": {"labtest_" + tag: {"paths": ["{user_cache}/labtest-" + tag],
                                                     "hf_repos": ["labtest-org/" + tag], "pip": ["labtest-" + tag]}},
             "residue_homes": [str(home)], "residue_report_dir": str(tmp_path / "report")}
    outputs = []
    for more in ({}, {"sweep_only_found": False}):
        proc = subprocess.run(["ansible-playbook", "-vvv", "-i", str(inventory), os.path.join(REPO, "playbooks", "purge.yml"),
                               "-e", json.dumps(dict(extra, **more))], env=ansible_env({"ANSIBLE_PIPELINING": "0"}),
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:]
        _fleet, hosts, _latest = load_run(tmp_path / "report")
        assert hosts["good"]["status"] == "ok" and hosts["good"]["verified"]["clean"] is True
        outputs.append(proc.stdout)
    assert module_runs(outputs[0]) == ["check_vars", "discover", "autostart", "reap", "discover"]
    assert module_runs(outputs[1]) == ["check_vars", "discover", "autostart", "reap", "hf_cache", "remove",
                                       "pip_remove", "discover"]


def test_backup_then_restore_puts_the_files_back(tmp_path):
    backups = tmp_path / "backups"
    proc, residue, keep, report = run_purge(
        tmp_path, ["-vvv", "-e", "residue_hosts=good", "-e", "residue_backup_dir=%s" % backups],
        env={"ANSIBLE_PIPELINING": "0"})  # without pipelining -vvv names every module file it runs
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not residue.exists()
    # the module runs on the host for a whole purge (the Python that runs each module, not its chmod): the profile
    # has paths only, so preflight found no HF repo and no pip package and hf_cache and pip_remove never ran
    assert module_runs(proc.stdout) == ["check_vars", "discover", "autostart", "reap", "remove", "open_deleted",
                                        "discover"]
    _fleet, hosts, _latest = load_run(report)
    archive = hosts["good"]["backed_up"]["path"]
    assert archive.startswith(str(backups)) and os.path.isfile(archive)
    inventory = tmp_path / "inventory.ini"
    restore = subprocess.run(["ansible-playbook", "-i", str(inventory), os.path.join(REPO, "playbooks", "restore.yml"),
                              "-e", "residue_hosts=good", "-e", "residue_report_dir=%s" % report],
                             env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert (residue / "sub" / "weights.bin").read_bytes() == b"w" * 200000
    _fleet, hosts, _latest = load_run(report)
    assert hosts["good"]["restored"]["archive"] == archive
    assert hosts["good"]["restored"]["files"] >= 1


def test_prune_sweeps_unreferenced_shared_store_payloads(tmp_path):
    """prune.yml on a huggingface_hub 2.x shared-store cache: a payload whose repo was deleted by hand goes (under
    its lock, as `hf cache prune` does), a payload a repo still links stays, and the repo still reads."""
    import shutil
    import sys
    sys.path.insert(0, os.path.join(REPO, ".build", "collections"))
    from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared

    home = tmp_path / "home" / "pruner"
    cache = str(home / ".cache" / "huggingface" / "hub")
    kept = hfgen.add_repo(cache, "org/kept", revisions=1, files_per_revision=1)
    gone = hfgen.add_repo(cache, "org/gone", revisions=1, files_per_revision=1)
    kept_xet = list(hfshared.share(cache, [kept], payloads=1, fraction=1.0, seed=1))[0]
    gone_xet = list(hfshared.share(cache, [gone], payloads=1, fraction=1.0, seed=2))[0]
    shutil.rmtree(gone.path)  # deleted by hand: its payload is left in the store
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("good ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PYTHON)
    report = tmp_path / "report"
    extra = {"residue_homes": [str(home)], "residue_report_dir": str(report), "residue_prune_older_than": "3650d"}
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), os.path.join(REPO, "playbooks", "prune.yml"),
                           "-e", json.dumps(extra)], env=ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    store = os.path.join(cache, "blobs")
    assert not os.path.exists(os.path.join(store, gone_xet[:2], gone_xet))
    assert os.path.isfile(os.path.join(store, kept_xet[:2], kept_xet))
    for dirpath, _d, files in os.walk(os.path.join(kept.path, "snapshots")):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                assert f.read()
    fleet, hosts, _latest = load_run(report)
    assert hosts["good"]["freed_bytes"] > 0


def test_prune_max_size_is_one_budget_per_host_across_stores(tmp_path):
    """prune.yml with residue_prune_max_size: the least recently used models go first, whatever the store (an old
    Ollama model and an old torch checkpoint before a fresher Hugging Face repo), until the host fits."""
    import sys
    import time
    sys.path.insert(0, os.path.join(REPO, ".build", "collections"))
    from ansible_collections.residue.purge.tests.unit.support import hfgen, ollamagen

    now = time.time()
    home = tmp_path / "home" / "budgeter"
    hub = str(home / ".cache" / "huggingface" / "hub")
    repo = hfgen.add_repo(hub, "org/fresh", revisions=1, files_per_revision=2)
    ollama = str(home / ".ollama" / "models")
    ollamagen.model(ollama, "old:1b", [b"cfg-old", b"O" * 50000], mtime=now - 300 * 86400)
    for name in ollamagen.blob_names(ollama):
        os.utime(os.path.join(ollama, "blobs", name), (now - 300 * 86400,) * 2)
    checkpoint = home / ".cache" / "torch" / "hub" / "checkpoints" / "old.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"t" * 40000)
    os.utime(str(checkpoint), (now - 200 * 86400,) * 2)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("good ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PYTHON)
    report = tmp_path / "report"
    extra = {"residue_homes": [str(home)], "residue_report_dir": str(report), "residue_prune_older_than": "3650d",
             "residue_prune_max_size": "20000"}
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), os.path.join(REPO, "playbooks", "prune.yml"),
                           "-e", json.dumps(extra)], env=ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert ollamagen.blob_names(ollama) == [] and not checkpoint.exists()
    assert os.path.isdir(repo.path)  # the fresh repo fits the budget once the two older models are gone
    fleet, hosts, _latest = load_run(report)
    assert hosts["good"]["freed_bytes"] >= 50007 + 40000
