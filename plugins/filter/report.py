# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers of the report role: per-host audit records and the fleet summary.

The roles register each module's result; `residue_host_record` turns those results into one JSON record per
host, `residue_fleet` aggregates the records for the Markdown/HTML templates, `residue_bar_svg` draws the
freed-bytes charts as inline SVG.  Pure functions over plain dicts, unit-tested in
tests/unit/plugins/filter/test_report.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError

try:
    from markupsafe import escape as _escape
except ImportError:  # pragma: no cover - Jinja2 always brings markupsafe
    from html import escape as _escape


PHASES = ("preflight", "stop", "sweep", "verify")


def _result(value):
    """A registered result, or {} when the task never ran or was skipped."""
    if not isinstance(value, dict) or value.get("skipped"):
        return {}
    return value


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _target_of(path, residues, default):
    """The target whose discovered residue contains path (longest match), else default."""
    best = None
    for item in residues:
        where = item.get("path") or ""
        if where and _under(path, where) and (best is None or len(where) > len(best["path"])):
            best = item
    return best["target"] if best else default


def human_bytes(value):
    """1536 -> '1.5 KiB' (binary units, as du -h)."""
    try:
        value = float(value or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError("residue_human_bytes: not a number: %r" % (value,))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0


def _failures(phase, result, items_key=None, label=None):
    """The task's own failure and its per-item failures (a list; Ansible turns a module's `failed` key to a bool)."""
    out = []
    items = result.get(items_key) if items_key else None
    if result.get("failed") is True:
        out.append({"phase": phase, "item": label or "", "error": result.get("msg") or "failed"})
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):  # hf_cache lists its failed removals as "path: error" lines
            out.append({"phase": phase, "item": "", "error": str(item)})
            continue
        where = item.get("path") or item.get("unit") or item.get("name") or str(item.get("pid", ""))
        out.append({"phase": phase, "item": where, "error": item.get("error") or item.get("reason") or "failed"})
    return out


def host_record(results, host, run):
    """Build the audit record of one host from the registered results of its phases.

    results: {found, reaped, autostart, hf, removed, pip, after, pinned, failure} (missing = did not run)
    run: {run_id, started, check_mode, targets, reachable (bool), completed (bool)}
    """
    if not isinstance(results, dict) or not isinstance(run, dict):
        raise AnsibleFilterError("residue_host_record expects two dicts (results, run)")
    found = _result(results.get("found"))
    reaped = _result(results.get("reaped"))
    autostart = _result(results.get("autostart"))
    hf = _result(results.get("hf"))
    removed = _result(results.get("removed"))
    pip = _result(results.get("pip"))
    after = _result(results.get("after"))
    pinned = _result(results.get("pinned"))
    restored = _result(results.get("restored"))
    residues = found.get("residues", [])
    targets = run.get("targets") or []
    default_target = targets[0] if len(targets) == 1 else "unattributed"

    removed_items = []
    for item in removed.get("removed", []):
        removed_items.append({"kind": "path",
                              "target": item.get("target") or _target_of(item.get("path", ""), residues, default_target),
                              "path": item.get("path"), "bytes": int(item.get("bytes") or 0),
                              "files": item.get("files"), "owner": item.get("owner")})
    for item in hf.get("deleted", []):
        repo_path = item.get("path") or os.path.join(item.get("cache") or "", item.get("repo_type", "model") + "s--"
                                                     + (item.get("repo_id") or "").replace("/", "--"))
        removed_items.append({"kind": "hf_repo", "target": _target_of(repo_path, residues, default_target),
                              "path": repo_path, "repo_id": item.get("repo_id"), "cache": item.get("cache"),
                              "revisions": item.get("revisions"), "bytes": int(item.get("freed_bytes") or 0)})
    for env in pip.get("environments", []):
        for pkg in env.get("removed", []) + env.get("orphans_removed", []):
            removed_items.append({"kind": "pip", "target": default_target, "path": env.get("path") or env.get("environment"),
                                  "package": "%s %s" % (pkg.get("name"), pkg.get("version", "")), "bytes": 0})

    freed_by_target = {}
    for item in removed_items:
        freed_by_target[item["target"]] = freed_by_target.get(item["target"], 0) + item["bytes"]

    failed = []
    failed += _failures("preflight", found)
    failed += _failures("stop", reaped, "survivors")
    failed += _failures("stop", autostart, "failures")
    failed += _failures("sweep", hf, "failures")
    failed += _failures("sweep", removed, "failures")
    failed += _failures("sweep", pip)
    for env in pip.get("environments", []):
        if env.get("status") == "failed":
            failed.append({"phase": "sweep", "item": env.get("path") or "", "error": env.get("error") or "pip failed"})
    failed += _failures("verify", pinned, "survivors")
    failure = results.get("failure")
    if isinstance(failure, dict) and failure.get("msg") and not any(f["error"] == failure["msg"] for f in failed):
        failed.append({"phase": failure.get("phase", "?"), "item": failure.get("task", ""), "error": failure["msg"]})

    left = [{"target": r.get("target"), "kind": r.get("kind"), "path": r.get("path"), "bytes": r.get("bytes", 0)}
            for r in after.get("residues", [])]
    verified = None
    if after:
        verified = {
            "residues_left": left,
            "processes_left": len(after.get("processes", [])),
            "packages_left": len(after.get("packages", [])),
            "pinned_bytes": sum(int(h.get("bytes") or 0) for h in pinned.get("remaining", pinned.get("handles", []))),
        }
        verified["clean"] = not (left or verified["processes_left"] or verified["packages_left"]
                                 or verified["pinned_bytes"])

    if not run.get("reachable", True):
        status = "unreachable"
    elif failed or not run.get("completed"):
        status = "failed"
    elif run.get("check_mode"):
        status = "preview"
    else:
        status = "ok"
    if status == "unreachable" and not failed:
        failed.append({"phase": "connect", "item": "", "error": "host unreachable: no phase ran"})
    if status == "failed" and not failed:
        failed.append({"phase": "?", "item": "", "error": "the host stopped before the report (see the play output)"})
    backup = removed.get("backup") or None
    return {
        "host": host,
        "status": status,
        "run_id": run.get("run_id"),
        "started": run.get("started"),
        "check_mode": bool(run.get("check_mode")),
        "targets": targets,
        "found": {
            "residues": [{"target": r.get("target"), "kind": r.get("kind"), "path": r.get("path"), "user": r.get("user"),
                          "bytes": r.get("bytes", 0), "repo_id": r.get("repo_id")} for r in residues],
            "total_bytes": found.get("total_bytes", 0),
            "processes": [{"pid": p.get("pid"), "name": p.get("name"), "user": p.get("user"), "target": p.get("target")}
                          for p in found.get("processes", [])],
            "packages": [{"name": p.get("name"), "version": p.get("version"), "environment": p.get("environment")}
                         for p in found.get("packages", [])],
            "hf_caches": found.get("hf_caches", []),
        },
        "stopped": [{"pid": p.get("pid"), "name": p.get("name"), "user": p.get("user"), "outcome": p.get("outcome")}
                    for p in reaped.get("terminated", [])],
        "autostart": ([dict(u, kind="systemd") for u in autostart.get("units", [])]
                      + [dict(c, kind="cron") for c in autostart.get("cron", [])]
                      + [dict(x, kind="xdg") for x in autostart.get("xdg", [])]
                      + [dict(x, kind="launchd") for x in autostart.get("launchd", [])]),
        "removed": removed_items,
        "freed_bytes": sum(i["bytes"] for i in removed_items),
        "freed_by_target": freed_by_target,
        "filesystems": removed.get("filesystems", []),
        "backed_up": backup,
        "restored": ({"archive": restored.get("src"), "files": len(restored.get("files") or [])} if restored else None),
        "held_open": [{"pid": h.get("pid"), "name": h.get("name"), "user": h.get("user"), "path": h.get("path"),
                       "bytes": h.get("bytes")} for h in pinned.get("handles", [])],
        "verified": verified,
        "failed": failed,
        "held_back": [{"cache": h.get("cache"), "repo_id": h.get("repo_id"), "reason": h.get("reason"),
                       "detail": h.get("detail")} for h in hf.get("held_back", [])],
        "problems": sorted(set(
            [str(p) for p in found.get("problems", []) + removed.get("problems", []) + hf.get("problems", [])]
            + ["%s: %s (%s)" % (e.get("path"), e.get("status"), e.get("error"))
               for e in pip.get("environments", []) if e.get("status") in ("broken", "externally_managed")])),
    }


def fleet(records):
    """Aggregate host records: totals, per host and per target freed bytes, every failure with its host."""
    if not isinstance(records, list):
        raise AnsibleFilterError("residue_fleet expects a list of host records")
    records = sorted(records, key=lambda r: r.get("host", ""))
    by_target = {}
    failures = []
    counts = {}
    for rec in records:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        for target, freed in rec.get("freed_by_target", {}).items():
            by_target[target] = by_target.get(target, 0) + freed
        for fail in rec.get("failed", []):
            failures.append(dict(fail, host=rec["host"]))
    return {
        "hosts": len(records),
        "status_counts": counts,
        "freed_bytes": sum(r.get("freed_bytes", 0) for r in records),
        "found_bytes": sum(r.get("found", {}).get("total_bytes", 0) for r in records),
        "stopped": sum(len(r.get("stopped", [])) for r in records),
        "removed_items": sum(len(r.get("removed", [])) for r in records),
        "by_host": [(r["host"], r.get("freed_bytes", 0)) for r in records],
        "by_target": sorted(by_target.items()),
        "failures": failures,
        "records": records,
    }


def bar_svg(pairs, title="", width=480):
    """A horizontal bar chart as self-contained inline SVG: one bar per (label, bytes) pair."""
    pairs = [(str(label), int(value or 0)) for label, value in pairs]
    bar_h, gap, label_w, top = 22, 8, 170, 30
    height = top + len(pairs) * (bar_h + gap) + 10
    peak = max([pair[1] for pair in pairs] + [1])
    plot_w = width - label_w - 110
    out = ['<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d">'
           % (width, height, width, height),
           '<title>%s</title>' % _escape(title),
           '<text x="0" y="18" font-size="14" font-weight="bold">%s</text>' % _escape(title)]
    for i, (label, value) in enumerate(pairs):
        y = top + i * (bar_h + gap)
        w = int(round(plot_w * value / peak)) if value else 0
        out.append('<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>'
                   % (label_w - 8, y + bar_h - 6, _escape(label)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#2b6cb0"><title>%s: %s</title></rect>'
                   % (label_w, y, max(w, 1), bar_h, _escape(label), human_bytes(value)))
        out.append('<text x="%d" y="%d" font-size="12">%s</text>' % (label_w + w + 6, y + bar_h - 6, human_bytes(value)))
    if not pairs:
        out.append('<text x="0" y="%d" font-size="12">nothing</text>' % (top + 14))
    out.append("</svg>")
    return "\n".join(out)


class FilterModule(object):
    def filters(self):
        return {
            "residue_host_record": host_record,
            "residue_fleet": fleet,
            "residue_bar_svg": bar_svg,
            "residue_human_bytes": human_bytes,
        }
