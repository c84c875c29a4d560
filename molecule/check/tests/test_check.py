"""purge.yml --check: the plan is reported, and no host changed at all."""
import json
import os
import subprocess

import pytest

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
def snapshots():
    before = json.load(open(os.path.join(EPHEMERAL, "snapshot-before.json")))
    out = subprocess.run([os.path.join(TOP, "tools", "lab", "lab.sh"), "--lab", "mcheck", "snapshot"],
                         check=True, capture_output=True, text=True).stdout
    return before, json.loads(out)


def test_no_host_changed(host, snapshots):
    before, after = snapshots
    name = host.backend.get_hostname()
    assert len(before[name]) > 500  # the seeded installation is in the fingerprint
    changed = sorted(p for p in set(before[name]) | set(after[name]) if before[name].get(p) != after[name].get(p))
    assert changed == [], changed[:20]


def test_daemon_still_running(host):
    assert "open-autoglm serve" in host.check_output("ps -eo args=")


def test_the_plan_was_reported():
    fleet = json.load(open(os.path.join(EPHEMERAL, "report", "latest", "fleet.json")))
    assert fleet["run"]["check_mode"] is True
    assert {r["host"] for r in fleet["hosts"]} == {"mcheck-1", "mcheck-2"}
    for record in fleet["hosts"]:
        assert record["status"] == "preview", record["failed"]
        kinds = {i["kind"] for i in record["removed"]}
        assert {"path", "hf_repo"} <= kinds, record["removed"]
        assert record["freed_bytes"] > 3 * 1024 * 1024
