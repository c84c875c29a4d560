# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What win_reap's C# Stopper returns (run under Mono, as tests/unit/plugins/module_utils/test_windows_reap.py
does) reaches the report. A controller-side test: the report filter imports ansible's controller code, which
ansible-test keeps away from the module_utils units."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.residue.purge.plugins.filter.report import host_record, text
from ansible_collections.residue.purge.tests.unit.plugins.module_utils import test_windows_reap

stop = test_windows_reap.stop


def test_the_report_carries_what_the_stopper_returns(stop):
    """win_reap returns the Stopper's entries (ConvertFrom-StopEntry keeps their keys): fed through the report's
    reap normalisers, as a Windows host's stop phase is, every survivor is a failure with its error, every stopped
    process a stopped entry and every spared one held back, by name and pid."""
    services = dict(procs=[{"pid": 600, "ppid": 500, "name": "services.exe", "ctime": 5},
                           {"pid": 300, "ppid": 600, "name": "daemon.exe", "ctime": 30, "ignores_close": True},
                           {"pid": 310, "ppid": 100, "name": "daemon.exe", "ctime": 31, "window": True}],
                    restarts=[{"supervisor": 600, "name": "daemon.exe", "delay": 1, "times": -1}], protected=[310])
    runs = [stop(grace=1, respawn_window=3, **services), stop(grace=1, respawn_window=1, check_mode=True, **services)]
    assert runs[0]["survivors"] and runs[0]["spared"] and runs[1]["terminated"], runs
    for out in runs:
        result = {"matched": [], "terminated": out["terminated"], "survivors": out["survivors"],
                  "spared": out["spared"], "problems": []}
        if out["survivors"]:
            result.update(failed=True, msg="%d process(es) still running" % len(out["survivors"]))
        record = host_record({"reaped": result}, "win1", {"targets": ["t"], "completed": True})
        failed = [(f["item"], f["error"]) for f in record["failed"]]
        for s in out["survivors"]:
            assert ("%s (pid %s)" % (s["name"], s["pid"]), s["error"]) in failed, (s, failed)
        assert sorted((s["pid"], s["name"], s["outcome"]) for s in record["stopped"]) == sorted(
            (e["pid"], e["name"], e["outcome"]) for e in out["terminated"])
        assert [h["item"] for h in record["held_back"]] == ["%s (pid %s)" % (e["name"], e["pid"]) for e in out["spared"]]
        assert all(h["detail"] == text(e["reason"]) for h, e in zip(record["held_back"], out["spared"]))
        assert record["status"] == ("failed" if out["survivors"] else "ok")
