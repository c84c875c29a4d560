# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The set_stats summary: built from residue_fleet's output, its figures equal the report's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.residue.purge.plugins.filter.report import fleet, host_record
from ansible_collections.residue.purge.plugins.filter.stats import MAX_FAILURES, fleet_stats

RUN = {"run_id": "20261202T120000Z-purge-7", "playbook": "purge", "started": "2026-12-02 12:00:00",
       "targets": ["open_autoglm", "ollama"], "check_mode": False, "completed": True, "reachable": True}


def results(scale=1, failures=0, held_back=0):
    found = {
        "residues": [
            {"target": "open_autoglm", "kind": "path", "path": "/home/a/.cache/open-autoglm", "bytes": 1000 * scale},
            {"target": "ollama", "kind": "path", "path": "/home/a/.ollama/models", "bytes": 7 * scale},
        ],
        "processes": [{"pid": 5, "name": "open-autoglm", "target": "open_autoglm"}],
        "total_bytes": 1007 * scale,
    }
    return {
        "found": found,
        "reaped": {"terminated": [{"pid": 5, "name": "open-autoglm", "outcome": "exited"}], "survivors": []},
        "removed": {"removed": [{"path": "/home/a/.cache/open-autoglm", "bytes": 1000 * scale, "target": "open_autoglm"},
                                {"path": "/home/a/.ollama/models", "bytes": 7 * scale, "target": "ollama"}],
                    "failures": [{"path": "/home/a/.cache/open-autoglm/locked%d" % i, "error": "Permission denied"}
                                 for i in range(failures)]},
        "hf": {"deleted": [], "held_back": [{"cache": "/data/hf/hub", "repo_id": "zai-org/AutoGLM-Phone-9B",
                                            "reason": "in_use", "detail": "open in 5"}] * held_back},
        "after": {"residues": [], "processes": [], "packages": []},
    }


def test_figures_equal_the_fleet_report():
    records = [host_record(results(1), "h1", RUN), host_record(results(3, failures=2, held_back=1), "h2", RUN),
               host_record({}, "h3", dict(RUN, reachable=False, completed=False))]
    summary = fleet(records)
    stats = fleet_stats(summary, RUN, "/srv/reports/x")
    for key in ("hosts", "found_bytes", "freed_bytes", "stopped", "removed_items", "status_counts"):
        assert stats[key] == summary[key], key
    assert stats["hosts"] == 3
    assert stats["status_counts"] == {"ok": 1, "failed": 1, "unreachable": 1}
    assert stats["found_bytes"] == 1007 * 4
    assert stats["freed_bytes"] == 1007 * 4
    assert stats["failures"] == len(summary["failures"]) == 3  # h2's two items, h3 unreachable
    assert stats["held_back"] == 1
    assert stats["by_host"]["h2"] == {"status": "failed", "found_bytes": 3021, "freed_bytes": 3021, "stopped": 1,
                                      "removed_items": 2, "held_back": 1, "failures": 2}
    assert stats["by_host"]["h3"]["status"] == "unreachable"
    assert stats["by_target"] == {"open_autoglm": {"found_bytes": 4000, "freed_bytes": 4000},
                                  "ollama": {"found_bytes": 28, "freed_bytes": 28}}
    assert dict(summary["by_target"]) == {t: v["freed_bytes"] for t, v in stats["by_target"].items()}
    assert (stats["run_id"], stats["playbook"], stats["report_dir"]) == (RUN["run_id"], "purge", "/srv/reports/x")
    assert {f["host"] for f in stats["first_failures"]} == {"h2", "h3"}
    json.dumps(stats)  # set_stats data must serialise (AWX stores it as JSON)


def test_preview_is_flagged_and_counts_what_would_go():
    run = dict(RUN, check_mode=True)
    stats = fleet_stats(fleet([host_record(results(2), "h1", run)]), run, "/r")
    assert stats["check_mode"] is True
    assert stats["status_counts"] == {"preview": 1}
    assert stats["freed_bytes"] == 2014


def test_size_does_not_grow_with_removed_items_and_failures_are_capped():
    many = results(1, failures=500)
    many["removed"]["removed"] *= 1000
    stats = fleet_stats(fleet([host_record(many, "h1", RUN)]), RUN, "/r")
    assert stats["removed_items"] == 2000 and stats["failures"] == 500
    assert len(stats["first_failures"]) == MAX_FAILURES
    assert len(json.dumps(stats)) < 6000


@pytest.mark.parametrize("bad", [None, [], {"hosts": 1}, "text"])
def test_anything_but_a_fleet_summary_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="residue_fleet"):
        fleet_stats(bad)
