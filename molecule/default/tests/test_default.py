"""After purge.yml: nothing of Open-AutoGLM left on any lab host, everything else intact.

testinfra runs these once per molecule host over the same SSH route as Ansible.
"""
import json
import os
import re

import pytest

LAB = "/usr/local/lib/residue-lab"
USERS = ["alice", "bob"]
TARGET_DIR = "models--zai-org--AutoGLM-Phone-9B"
UNRELATED_EXCLUDES = ["/open-autoglm(/|$)", "models--zai-org--AutoGLM-", "/(open_autoglm|autoglm_core)([-/]|$)",
                      "^/etc/cron.d/ml-jobs$"]


def sh(host, cmd):
    return host.run(cmd)


@pytest.mark.parametrize("user", USERS)
def test_user_residue_gone(host, user):
    for path in [".cache/open-autoglm", ".config/open-autoglm", ".cache/huggingface/hub/" + TARGET_DIR,
                 ".cache/huggingface/hub/.locks/" + TARGET_DIR]:
        assert not host.file("/home/%s/%s" % (user, path)).exists, path


def test_system_cache_found_through_the_daemon_is_purged(host):
    assert not host.file("/data/hf/hub/" + TARGET_DIR).exists
    assert host.file("/data/hf/hub/models--sentence-x--minilm-l6/snapshots").is_directory


def test_no_target_process_alive_and_other_daemon_survives(host):
    procs = host.check_output("ps -eo pid=,comm=,args=")
    assert not re.search(r"open-autoglm( |$)", procs), procs
    assert "open-autoglm-supervisor" not in procs, procs
    assert "labeler --serve" in procs


def test_no_deleted_but_open_files_pin_space(host):
    held = host.check_output("find /proc/[0-9]*/fd -lname '* (deleted)' -printf '%l\\n' 2>/dev/null || true")
    pinned = [line for line in held.splitlines() if line.startswith(("/home/", "/data/", "/opt/"))]
    assert pinned == []


def test_pip_target_and_orphan_gone_shared_dependency_kept(host):
    listing = host.check_output("/opt/ml/venv/bin/python -m pip list --format=json --disable-pip-version-check")
    names = {p["name"].lower() for p in json.loads(listing)}
    assert "open-autoglm" not in names
    assert "autoglm-core" not in names  # its orphan dependency, not requested by anyone
    assert {"labeler", "tokenkit"} <= names
    assert host.check_output("/opt/ml/venv/bin/labeler still works") == "still | works"
    assert host.run("/opt/ml/venv/bin/python -m pip check --disable-pip-version-check").rc == 0


def test_other_model_intact_although_it_shared_a_blob(host):
    snap = "/home/alice/.cache/huggingface/hub/models--THUDM--glm-edge-1.5b/snapshots/" + "c3" * 20
    tok = host.file(snap + "/tokenizer.json")
    assert tok.is_symlink and host.file(tok.linked_to).is_file
    assert host.file(tok.linked_to).size == 96 * 1024


def test_cron_target_lines_gone_others_byte_identical(host):
    crontab = host.check_output("crontab -l -u alice")
    assert "open-autoglm" not in crontab
    assert "*/10 * * * * /usr/bin/find /tmp -name '*.tmp' -delete" in crontab
    assert "0 3 * * * /opt/ml/venv/bin/labeler --reindex" in crontab
    cron_d = host.file("/etc/cron.d/ml-jobs")
    if cron_d.exists:
        assert "open_autoglm" not in cron_d.content_string
        assert "30 4 * * * root /opt/ml/venv/bin/labeler nightly" in cron_d.content_string


def test_every_unrelated_file_is_byte_identical(host):
    before = json.loads(host.file(LAB + "/manifest-before.json").content_string)
    excludes = " ".join("--exclude '%s'" % x for x in UNRELATED_EXCLUDES)
    after = json.loads(host.check_output(
        "/usr/bin/python3 %s/manifest.py %s /home /data /srv /opt /etc/cron.d /usr/local/bin" % (LAB, excludes)))
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert changed == [], changed[:20]
    assert len(before) > 100  # the manifest really covers the seeded trees


def test_backup_archive_holds_what_was_removed(host):
    archives = host.check_output("find /var/backups/residue -name '*.tar.*' -type f 2>/dev/null || true").split()
    assert archives, "residue_backup_dir was set: an archive must exist"
    members = host.check_output("tar -tf %s" % archives[0]).splitlines()
    assert "home/alice/.cache/open-autoglm/sessions/s1.db" in members
    assert "home/bob/.config/open-autoglm/config.yaml" in members


def test_fleet_report_on_the_controller():
    report = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "report", "latest")
    fleet = json.load(open(os.path.join(report, "fleet.json")))
    hosts = {r["host"]: r for r in fleet["hosts"]}
    assert set(hosts) == {"mdefault-1", "mdefault-2", "mdefault-3"}
    html = open(os.path.join(report, "fleet.html")).read()
    assert "src=\"http" not in html
    # latest is the idempotence run, which freed nothing and so draws no chart; the first run's page has them
    root = os.path.dirname(report)
    first = sorted(d for d in os.listdir(root) if d != "latest")[0]
    first_html = open(os.path.join(root, first, "fleet.html")).read()
    assert "<svg" in first_html and "src=\"http" not in first_html
    assert "<svg" not in html
    for name in hosts:
        record = json.load(open(os.path.join(report, "hosts", name + ".json")))
        assert record["status"] == "ok", record["failed"]
        assert record["verified"]["clean"] is True


def test_first_run_report_accounts_for_what_was_removed():
    root = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "report")
    runs = sorted(d for d in os.listdir(root) if d != "latest")
    assert len(runs) >= 2  # converge and idempotence
    first = json.load(open(os.path.join(root, runs[0], "fleet.json")))
    for record in first["hosts"]:
        assert record["status"] == "ok", record["failed"]
        kinds = {i["kind"] for i in record["removed"]}
        assert {"path", "hf_repo", "pip"} <= kinds, record["removed"]
        assert any(i.get("cache") == "/data/hf/hub" for i in record["removed"])
        assert record["freed_bytes"] > 3 * 1024 * 1024
        assert record["stopped"], "the daemon was running"
    second = json.load(open(os.path.join(root, runs[-1], "fleet.json")))
    assert all(r["removed"] == [] and r["stopped"] == [] for r in second["hosts"])
