# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet summary a run publishes with ansible.builtin.set_stats (AWX job artifacts, workflow variables).

`residue_fleet_stats` condenses what `residue_fleet` (plugins/filter/report.py) computed from the host records, so
the artifact, fleet.json and the Markdown/HTML report share one source for every figure. It stays small whatever
the number of files: no item lists, per host and per target figures only, the first failures in full.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

# An AWX job keeps its artifacts in the database and a workflow passes them on as extra variables: the full list of
# failures stays in the report files; the summary names the first ones and counts all.
MAX_FAILURES = 20


def _found_by_target(record):
    out = {}
    for residue in record.get("found", {}).get("residues", []):
        target = residue.get("target") or "unattributed"
        out[target] = out.get(target, 0) + int(residue.get("bytes") or 0)
    return out


def fleet_stats(fleet, run=None, report_dir=None):
    """The summary of a run for set_stats, from the output of residue_fleet.

    fleet: residue_fleet(records); run: the playbook's residue_run (run_id, playbook, check_mode, targets);
    report_dir: where this run's report files were written.
    """
    if not isinstance(fleet, dict) or not isinstance(fleet.get("records"), list):
        raise AnsibleFilterError("residue_fleet_stats expects the output of residue.purge.residue_fleet")
    run = run if isinstance(run, dict) else {}
    by_host = {}
    by_target = {}
    for record in fleet["records"]:
        by_host[record["host"]] = {
            "status": record.get("status"),
            "found_bytes": int(record.get("found", {}).get("total_bytes") or 0),
            "freed_bytes": int(record.get("freed_bytes") or 0),
            "stopped": len(record.get("stopped", [])),
            "removed_items": len(record.get("removed", [])),
            "held_back": len(record.get("held_back", [])),
            "failures": len(record.get("failed", [])),
        }
        for target, found in _found_by_target(record).items():
            by_target.setdefault(target, {"found_bytes": 0, "freed_bytes": 0})["found_bytes"] += found
    for target, freed in fleet.get("by_target", []):
        by_target.setdefault(target, {"found_bytes": 0, "freed_bytes": 0})["freed_bytes"] += int(freed or 0)
    failures = fleet.get("failures", [])
    return {
        "run_id": run.get("run_id"),
        "playbook": run.get("playbook"),
        "check_mode": bool(run.get("check_mode")),
        "targets": list(run.get("targets") or []),
        "report_dir": report_dir,
        "hosts": fleet.get("hosts", len(by_host)),
        "status_counts": dict(fleet.get("status_counts", {})),
        "found_bytes": int(fleet.get("found_bytes") or 0),
        "freed_bytes": int(fleet.get("freed_bytes") or 0),
        "stopped": int(fleet.get("stopped") or 0),
        "removed_items": int(fleet.get("removed_items") or 0),
        "held_back": sum(host["held_back"] for host in by_host.values()),
        "failures": len(failures),
        "first_failures": [dict((k, f.get(k)) for k in ("host", "phase", "item", "error"))
                           for f in failures[:MAX_FAILURES]],
        "by_host": by_host,
        "by_target": by_target,
    }


class FilterModule(object):
    def filters(self):
        return {"residue_fleet_stats": fleet_stats}
