# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers of the report role: per-host audit records and the fleet summary.

The roles register each module's result; `residue_host_record` turns those results into one JSON record per
host, `residue_fleet` aggregates the records for the Markdown/HTML templates, `residue_bar_svg` draws the
freed-bytes charts as inline SVG.  Pure functions over plain dicts, unit-tested in
tests/unit/plugins/filter/test_report.py and, on real module results, test_report_contract.py.

The result contract: a module's result shape is documented once, in its RETURN.  `RESULT_KEYS` below says, for
every key a module returns, which part of the host record carries it (a small normaliser) or why the record does
not need it (None, with a comment).  A new key is one line there; the contract test fails on a key that is not
listed, and on a failure-like key that is not carried.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections.abc import Mapping
import re
import unicodedata

from ansible.errors import AnsibleFilterError

try:
    from markupsafe import escape as _escape
except ImportError:  # pragma: no cover - Jinja2 always brings markupsafe
    from html import escape as _escape


PHASES = ("preflight", "stop", "sweep", "verify")

# The registered results the report role hands over (its `report_results`): slot -> (module, phase).
SLOTS = {
    "found": ("discover", "preflight"),
    "autostart": ("autostart", "stop"),
    "reaped": ("reap", "stop"),
    "hf": ("hf_cache", "sweep"),
    "budget": ("model_budget", "sweep"),
    # no role runs these two; a play that runs them in its sweep and registers them under these slots' names
    # (REGISTERED) gets their items in the record as model_budget's
    "ollama": ("ollama_models", "sweep"),
    "modelscope": ("modelscope_models", "sweep"),
    "removed": ("remove", "sweep"),
    "pip": ("pip_remove", "sweep"),
    "pinned": ("open_deleted", "verify"),
    "after": ("discover", "verify"),
    "restored": ("unarchive", "restore"),
}

# Keys Ansible adds to (or interprets in) every registered result; `failed` + `msg` become one failure.
ANSIBLE_KEYS = frozenset(("changed", "failed", "msg", "skipped", "skip_reason", "warnings", "deprecations",
                          "invocation", "exception", "module_stderr", "module_stdout", "rc", "diff",
                          "ansible_facts", "_ansible_no_log", "_ansible_verbose_always", "unreachable",
                          "false_condition"))


def _result(value):
    """A registered result, or {} when the task never ran or was skipped."""
    if not isinstance(value, dict) or value.get("skipped"):
        return {}
    return value


_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")  # C:\... or \\server\share\...


def _under(path, root):
    """path is root or inside it; Windows paths (a drive or UNC root) by backslash, without regard to case."""
    if _WINDOWS_PATH.match(root):
        path, root = path.lower(), root.lower()
        return path == root or path.startswith(root.rstrip("\\") + "\\")
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


# ---------------------------------------------------------------- names as the pages and the console show them
# Names come from the hosts: a file name may hold newlines, terminal escapes, bidi overrides, bytes that are not
# UTF-8 (the modules return those as \xNN, and a str with surrogate escapes is shown the same way) or markup.
# Every page shows each name on one line, whole, as text.

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOT_PLAIN = re.compile("[^\x20-\x7e]")


def _escape_char(match):
    char = match.group(0)
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
        return "\\x%02x" % (code - 0xDC00)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return "\\x%02x" % code
    if unicodedata.category(char) in ("Cf", "Cs", "Zl", "Zp"):  # bidi overrides, zero-width, line separators
        return "\\u%04x" % code if code <= 0xFFFF else "\\U%08x" % code
    return char


def text(value):
    """value as one line of plain text: control and format characters as backslash escapes, nothing dropped."""
    if value is None:
        return ""
    return _NOT_PLAIN.sub(_escape_char, value if isinstance(value, str) else str(value))


def md_code(value, cell=True):
    """value as a Markdown code span: shown literally (no markup, links or HTML), on one line, whole.

    cell: the span sits in a table row, where a pipe must be written \\| (GFM unescapes it before the span).
    """
    shown = text(value)
    if not shown:
        return ""
    if cell:
        shown = shown.replace("|", "\\|")
    fence = "`" * (max([len(run) for run in re.findall("`+", shown)] + [0]) + 1)
    # CommonMark strips one space from each side of a span that starts and ends with one (unless all spaces)
    pad = " " if shown.strip(" ") and (shown[0] in "` " or shown[-1] in "` ") else ""
    return fence + pad + shown + pad + fence


def _list(value):
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- normalisers: one module key -> record parts
# Each takes (value of the key, the whole result, phase) and returns {record part: [entries]}.

def _problems(value, result, phase):
    return {"problems": [str(p) for p in _list(value)]}


def _failed_items(value, result, phase):
    """Per-item failures: dicts naming a path, unit, name or pid with an error, or "path: error" lines."""
    out = []
    for item in _list(value):
        if not isinstance(item, dict):  # hf_cache lists its failed removals as "path: error" lines
            out.append({"phase": phase, "item": "", "error": str(item)})
            continue
        where = item.get("path") or item.get("unit") or item.get("name") or ""
        if item.get("pid") is not None:
            where = "%s (pid %s)" % (where, item["pid"]) if where else "pid %s" % item["pid"]
        out.append({"phase": phase, "item": where,
                    "error": item.get("error") or item.get("reason") or item.get("outcome") or "failed"})
    return {"failed": out}


def _unlisted_failures(value, result, phase):
    """remove lists the first 200 failures and counts them all: say how many more there were."""
    more = int(value or 0) - len(_list(result.get("failures")))
    if more <= 0:
        return {}
    error = "%d more entries could not be removed (the module lists the first %d)" % (more, int(value) - more)
    return {"failed": [{"phase": phase, "item": "", "error": error}]}


def _spared(value, result, phase):
    """Processes that matched (or held residue) but are never signalled: PID 1, the module's own ancestry."""
    return {"held_back": [{"phase": phase, "kind": "process", "item": "%s (pid %s)" % (p.get("name"), p.get("pid")),
                           "reason": "spared", "detail": p.get("reason") or "", "user": p.get("user")}
                          for p in _list(value)]}


def _other_namespaces(value, result, phase):
    """Matching processes of other PID namespaces (containers), left running: the operator must know a container
    still runs the target."""
    out = []
    for p in _list(value):
        where = "%s container %s" % (p.get("runtime"), p.get("container")) if p.get("runtime") else \
            "another PID namespace"
        detail = "runs in %s (cgroup %s, %s); not signalled (namespaces: all stops it)" % (
            where, p.get("cgroup") or "?", p.get("namespace") or "?")
        if p.get("paths"):
            detail += "; holds %s" % ", ".join(p["paths"])
        out.append({"phase": phase, "kind": "process", "item": "%s (pid %s)" % (p.get("name"), p.get("pid")),
                    "reason": "other namespace", "detail": detail, "user": p.get("user")})
    return {"held_back": out}


def _stopped(why):
    def normalise(value, result, phase):
        return {"stopped": [{"phase": phase, "pid": p.get("pid"), "name": p.get("name"), "user": p.get("user"),
                             "outcome": p.get("outcome"), "why": p.get("matched_by") or why}
                            for p in _list(value)]}
    return normalise


def _autostart_item(entry):
    """What one POSIX autostart entry is, in one line: the unit, the launchd label, or the file."""
    return entry.get("unit") or entry.get("label") or entry.get("path") or "?"


def _service_item(entry):
    """A Windows service by its name, and its display name when that says more."""
    name, shown = entry.get("name") or "?", entry.get("display_name")
    return "%s (%s)" % (name, shown) if shown and shown != name else name


def _task_item(entry):
    """A scheduled task by its full name: its folder (TaskPath, ending in a backslash) and its name."""
    folder = entry.get("path") or "\\"
    return folder + ("" if folder.endswith("\\") else "\\") + (entry.get("name") or "?")


def _run_value_item(entry):
    """A Run/RunOnce value: key\\name = the command it started."""
    return "%s\\%s = %s" % (entry.get("key") or "?", entry.get("name") or "", entry.get("command") or "")


def _autostart(kind, item=_autostart_item):
    def normalise(value, result, phase):
        out = []
        for entry in _list(value):
            out.append(dict(entry, kind=kind, item=item(entry)))
        return {"autostart": out}
    return normalise


def _residues(value, result, phase):
    return {"residues": [{"target": r.get("target"), "kind": r.get("kind"), "path": r.get("path"),
                          "user": r.get("user"), "bytes": r.get("bytes", 0), "repo_id": r.get("repo_id")}
                         for r in _list(value)]}


def _processes(value, result, phase):
    return {"processes": [{"pid": p.get("pid"), "name": p.get("name"), "user": p.get("user"),
                           "target": p.get("target")} for p in _list(value)]}


def _packages(value, result, phase):
    return {"packages": [{"name": p.get("name"), "version": p.get("version"), "environment": p.get("environment"),
                          "target": p.get("target")} for p in _list(value)]}


def _as_is(part):
    def normalise(value, result, phase):
        return {part: value}
    return normalise


def _hf_deleted(value, result, phase):
    out = []
    for item in _list(value):
        cache = item.get("cache") or ""
        folder = item.get("repo_type", "model") + "s--" + (item.get("repo_id") or "").replace("/", "--")
        repo_path = item.get("path") or (cache.rstrip("\\") + "\\" + folder if _WINDOWS_PATH.match(cache)
                                         else os.path.join(cache, folder))
        out.append({"kind": "hf_repo", "target": None, "path": repo_path, "repo_id": item.get("repo_id"),
                    "cache": item.get("cache"), "revisions": item.get("revisions"),
                    "bytes": int(item.get("freed_bytes") or 0)})
    return {"removed": out}


def _hf_store_swept(value, result, phase):
    """Shared store payloads nothing referenced (huggingface_hub 2.x), one removed item per cache's store."""
    return {"removed": [{"kind": "path", "target": None, "path": item.get("path"),
                         "bytes": int(item.get("bytes") or 0), "files": item.get("payloads"), "owner": None}
                        for item in _list(value)]}


def _budget_removed(value, result, phase):
    """model_budget's removals across stores: each one a removed item of its kind."""
    return {"removed": [{"kind": "path" if item.get("kind") == "torch_hub" else item.get("kind"), "target": None,
                         "path": item.get("path"), "repo_id": item.get("name"), "cache": item.get("store"),
                         "bytes": int(item.get("freed_bytes") or 0)} for item in _list(value)]}


def _budget_held_back(value, result, phase):
    return {"held_back": [{"phase": phase, "kind": h.get("kind"), "item": "%s in %s" % (h.get("name"), h.get("store")),
                           "cache": h.get("store"), "repo_id": h.get("name"), "reason": h.get("reason"),
                           "detail": h.get("detail") or ""} for h in _list(value)]}


def _ollama_removed(value, result, phase):
    return {"removed": [{"kind": "ollama_model", "target": None, "path": item.get("manifest"),
                         "repo_id": item.get("model") or item.get("name"), "cache": item.get("store"),
                         "bytes": int(item.get("freed_bytes") or 0)} for item in _list(value)]}


def _ollama_swept(value, result, phase):
    """Orphaned layers and stale partial downloads: each a removed file."""
    return {"removed": [{"kind": "path", "target": None, "path": item.get("path"), "bytes": int(item.get("bytes") or 0),
                         "files": 1, "owner": None} for item in _list(value)]}


def _modelscope_removed(value, result, phase):
    return {"removed": [{"kind": "modelscope_model", "target": None, "path": item.get("path"),
                         "repo_id": item.get("model_id"), "cache": item.get("cache"),
                         "bytes": int(item.get("bytes") or 0), "files": item.get("files")} for item in _list(value)]}


def _store_held_back(kind, name="name", store="store"):
    """A model a store's module left alone (in use, downloading): "name in store" with why."""
    def normalise(value, result, phase):
        return {"held_back": [{"phase": phase, "kind": kind, "item": "%s in %s" % (h.get(name), h.get(store)),
                               "cache": h.get(store), "repo_id": h.get(name), "reason": h.get("reason"),
                               "detail": h.get("detail") or ""} for h in _list(value)]}
    return normalise


def _hf_held_back(value, result, phase):
    return {"held_back": [{"phase": phase, "kind": "hf_repo", "item": "%s in %s" % (h.get("repo_id"), h.get("cache")),
                           "cache": h.get("cache"), "repo_id": h.get("repo_id"), "reason": h.get("reason"),
                           "detail": h.get("detail") or ""} for h in _list(value)]}


def _removed_paths(value, result, phase):
    return {"removed": [{"kind": "path", "target": item.get("target"), "path": item.get("path"),
                         "bytes": int(item.get("bytes") or 0), "files": item.get("files"), "owner": item.get("owner")}
                        for item in _list(value)]}


def _backup(value, result, phase):
    return {"backup": value or None}


def _pip_environments(value, result, phase):
    """Packages removed per environment; a failed environment is a failure, one left alone is held back."""
    looked_for = set(_list(result.get("packages")))
    out = {"removed": [], "failed": [], "held_back": []}
    for env in _list(value):
        where = env.get("path") or env.get("environment") or ""
        for pkg in _list(env.get("removed")) + _list(env.get("orphans_removed")):
            out["removed"].append({"kind": "pip", "target": None, "path": where, "name": pkg.get("name"),
                                   "package": "%s %s" % (pkg.get("name"), pkg.get("version", "")), "bytes": 0})
        if env.get("status") == "failed" or (env.get("status") == "broken" and env.get("found")):
            out["failed"].append({"phase": phase, "item": where, "error": env.get("error") or "pip failed"})
        elif env.get("status") == "externally_managed":
            out["held_back"].append({"phase": phase, "kind": "environment", "item": where,
                                     "reason": "externally_managed", "detail": env.get("error") or ""})
        for kept in _list(env.get("kept_shared")):
            if kept.get("name") in looked_for:
                out["held_back"].append({"phase": phase, "kind": "pip", "item": "%s in %s" % (kept.get("name"), where),
                                         "reason": "required",
                                         "detail": "required by %s" % ", ".join(_list(kept.get("required_by")))})
    return out


def _held_open(value, result, phase):
    return {"held_open": [{"pid": h.get("pid"), "name": h.get("name"), "user": h.get("user"), "path": h.get("path"),
                           "bytes": h.get("bytes")} for h in _list(value)]}


def _pinned_left(value, result, phase):
    """Handles still held after the holders were stopped; those of a spared process are not a failure."""
    spared = set(p.get("pid") for p in _list(result.get("spared")))
    left = [h for h in _list(value) if h.get("pid") not in spared]
    return {"pinned_left": _list(value),
            "failed": [{"phase": phase, "item": h.get("path") or "", "error": "still held open by %s (pid %s)"
                        % (h.get("name"), h.get("pid"))} for h in left]}


def _restored(value, result, phase):
    return {"restored": {"archive": value, "files": len(_list(result.get("files")))}}


# Every key each module returns (its RETURN), and what carries it into the host record.  None: not needed in the
# record (the comment says why).  Keep one line per key: tests/unit/plugins/filter/test_report_contract.py checks
# this table against real results and fails on a key that is missing, or failure-like and not carried.
RESULT_KEYS = {
    "discover": {
        "residues": _residues,
        "processes": _processes,
        "packages": _packages,
        "hf_caches": _as_is("hf_caches"),
        "total_bytes": _as_is("total_bytes"),
        "problems": _problems,
        "users": None,  # every residue names its user
        "targets": None,  # the run records the targets
    },
    "autostart": {
        "units": _autostart("systemd"),
        "cron": _autostart("cron"),
        "xdg": _autostart("xdg"),
        "launchd": _autostart("launchd"),
        # Windows (win_autostart): the same record part, one kind per mechanism
        "services": _autostart("windows_service", _service_item),
        "scheduled_tasks": _autostart("scheduled_task", _task_item),
        "run_keys": _autostart("run_key", _run_value_item),
        "startup_items": _autostart("startup_item"),
        "failures": _failed_items,
        "problems": _problems,
    },
    "reap": {
        "terminated": _stopped("matched"),
        "survivors": _failed_items,
        "spared": _spared,
        "other_namespaces": _other_namespaces,  # containers still running the target: held back, never signalled
        "problems": _problems,
        "matched": None,  # what was signalled is in terminated, what was not in survivors and spared
    },
    "hf_cache": {
        "deleted": _hf_deleted,
        "held_back": _hf_held_back,
        "store_swept": _hf_store_swept,  # unreferenced shared store payloads removed, per cache
        "failures": _failed_items,
        "problems": _problems,  # includes a cache still over its budget
        "freed_bytes": None,  # the sum of deleted[].freed_bytes and store_swept[].bytes (plus stale partial downloads)
        "blobs_deleted": None,  # counts; the bytes are in deleted[]
        "blobs_kept_shared": None,
        "caches": None,  # sizes before/after; over budget is also a problem line
    },
    "model_budget": {
        "removed": _budget_removed,
        "held_back": _budget_held_back,
        "failures": _failed_items,
        "problems": _problems,  # includes stores still over the budget
        "freed_bytes": None,  # the sum of removed[].freed_bytes
        "stores": None,  # sizes before; the removals carry the bytes
        "max_size": None,
        "bytes_before": None,
        "bytes_after": None,
        "over_budget": None,  # also a problem line
    },
    "ollama_models": {
        "removed": _ollama_removed,
        "swept": _ollama_swept,
        "held_back": _store_held_back("ollama_model"),
        "failures": _failed_items,  # "path: error" lines
        "problems": _problems,  # includes a store still over its budget
        "models": None,  # the inventory before; what went is in removed
        "stores": None,  # sizes before/after; over budget is also a problem line
        "freed_bytes": None,  # the sum of removed[].freed_bytes and swept[].bytes
    },
    "modelscope_models": {
        "removed": _modelscope_removed,
        "held_back": _store_held_back("modelscope_model", "model_id", "cache"),
        "failures": _failed_items,  # "path: error" lines
        "problems": _problems,  # includes a cache still over its budget
        "models": None,  # the inventory before; what went is in removed
        "caches": None,  # sizes before/after; over budget is also a problem line
        "freed_bytes": None,  # the sum of removed[].bytes
    },
    "remove": {
        "removed": _removed_paths,
        "failures": _failed_items,
        "failed_count": _unlisted_failures,
        "backup": _backup,
        "filesystems": _as_is("filesystems"),
        "problems": _problems,
        "freed_bytes": None,  # the sum of removed[].bytes
    },
    "pip_remove": {
        "environments": _pip_environments,
        "problems": _problems,
        "packages": None,  # the names looked for (used by _pip_environments)
    },
    "open_deleted": {
        "handles": _held_open,
        "terminated": _stopped("held deleted residue open"),
        "survivors": _failed_items,
        "spared": _spared,
        "other_namespaces": _other_namespaces,  # holders in containers: held back, never signalled
        "remaining": _pinned_left,
        "problems": _problems,
        "pinned_bytes": None,  # per filesystem; the handles carry the bytes
        "filesystems": None,
        "scan": None,  # processes inspected; unreadable ones are a problem line
    },
    # ansible.builtin.unarchive (restore.yml): only what the record shows; a failure is its task's `msg`
    "unarchive": {
        "src": _restored,
    },
}


def normalise(module, result, phase):
    """One registered result of `module` -> {record part: [entries]} (plus the task's own failure)."""
    result = _result(result)
    parts = {}
    if result.get("failed") is True:
        parts["failed"] = [{"phase": phase, "item": "", "error": result.get("msg") or "failed"}]
    for key, carry in RESULT_KEYS[module].items():
        if carry is None or key not in result:
            continue
        for part, value in carry(result[key], result, phase).items():
            if isinstance(value, list):
                parts.setdefault(part, []).extend(value)
            else:
                parts[part] = value
    return parts


# The variables the roles register each slot's result under, and the phases' rescue records (first set wins).
REGISTERED = {"found": "preflight_found", "autostart": "stop_autostart", "reaped": "stop_reaped", "hf": "sweep_hf",
              "budget": "sweep_budget", "ollama": "sweep_ollama", "modelscope": "sweep_modelscope",
              "removed": "sweep_removed", "pip": "sweep_pip", "pinned": "verify_pinned",
              "after": "verify_after", "restored": "restore_unpacked"}
FAILURES = ("preflight_failure", "stop_failure", "sweep_failure", "verify_failure", "restore_failure")


def host_results(hostvars, run):
    """What residue_host_record needs of one host, read from its variables (hostvars[host]) once:
    {"results": {slot: registered result, ..., "failure": the first phase's rescue record or None},
     "run": run plus completed (the host ran every phase) and reachable}."""
    if not isinstance(hostvars, Mapping) or not isinstance(run, dict):
        raise AnsibleFilterError("residue_host_results expects a host's variables (hostvars[host]) and the run")

    def get(name):
        try:
            return hostvars.get(name)
        except Exception:  # pylint: disable=broad-exception-caught  # a variable that does not template is absent
            return None

    failure = next((f for f in (get(name) for name in FAILURES) if f), None)
    results = dict((slot, get(name)) for slot, name in REGISTERED.items())
    results["failure"] = failure
    completed = bool(get("residue_completed"))
    unreachable = bool(failure.get("unreachable")) if isinstance(failure, dict) else False
    return {"results": results,
            "run": dict(run, completed=completed, reachable=(completed or failure is not None) and not unreachable)}


def host_record(results, host, run):
    """Build the audit record of one host from the registered results of its phases.

    results: {slot: registered result} for the slots of SLOTS (missing = did not run), plus `failure`
    (what the phase's rescue recorded: phase, task, msg)
    run: {run_id, started, check_mode, targets, reachable (bool), completed (bool)}
    """
    if not isinstance(results, dict) or not isinstance(run, dict):
        raise AnsibleFilterError("residue_host_record expects two dicts (results, run)")
    parts = dict((slot, normalise(module, results.get(slot), phase)) for slot, (module, phase) in SLOTS.items())
    found, after, pinned = parts["found"], parts["after"], parts["pinned"]
    residues = found.get("residues", [])
    targets = run.get("targets") or []
    default_target = targets[0] if len(targets) == 1 else "unattributed"
    pip_targets = dict(((p["name"], p["environment"]), p["target"]) for p in found.get("packages", []))

    def gather(part, slots=("autostart", "reaped", "hf", "budget", "ollama", "modelscope", "removed", "pip",
                            "pinned")):
        return [entry for slot in slots for entry in parts[slot].get(part, [])]

    removed_items = gather("removed", ("removed", "hf", "budget", "ollama", "modelscope", "pip"))
    for item in removed_items:
        if item["kind"] == "pip":
            item["target"] = pip_targets.get((item.pop("name"), item["path"])) or default_target
        elif not item.get("target"):
            item["target"] = _target_of(item.get("path") or "", residues, default_target)

    freed_by_target = {}
    for item in removed_items:
        freed_by_target[item["target"]] = freed_by_target.get(item["target"], 0) + item["bytes"]

    failed = found.get("failed", []) + gather("failed")
    failure = results.get("failure")
    if isinstance(failure, dict) and failure.get("msg") and not any(f["error"] == failure["msg"] for f in failed):
        failed.append({"phase": failure.get("phase", "?"), "item": failure.get("task", ""), "error": failure["msg"]})

    verified = None
    if _result(results.get("after")):
        left = [{"target": r["target"], "kind": r["kind"], "path": r["path"], "bytes": r["bytes"]}
                for r in after.get("residues", [])]
        verified = {
            "residues_left": left,
            "processes_left": len(after.get("processes", [])),
            "packages_left": len(after.get("packages", [])),
            "pinned_bytes": sum(int(h.get("bytes") or 0) for h in pinned.get("pinned_left", pinned.get("held_open", []))),
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
    problems = found.get("problems", []) + gather("problems") + [
        "after the purge: " + p for p in after.get("problems", []) if p not in found.get("problems", [])]
    return {
        "host": host,
        "status": status,
        "run_id": run.get("run_id"),
        "started": run.get("started"),
        "check_mode": bool(run.get("check_mode")),
        "targets": targets,
        "found": {
            "residues": residues,
            "total_bytes": found.get("total_bytes", 0),
            "processes": found.get("processes", []),
            "packages": [dict((k, p[k]) for k in ("name", "version", "environment")) for p in found.get("packages", [])],
            "hf_caches": found.get("hf_caches", []),
        },
        "stopped": gather("stopped", ("reaped", "pinned")),
        "autostart": gather("autostart", ("autostart",)),
        "removed": removed_items,
        "freed_bytes": sum(i["bytes"] for i in removed_items),
        "freed_by_target": freed_by_target,
        "filesystems": parts["removed"].get("filesystems", []),
        "backed_up": parts["removed"].get("backup"),
        "restored": parts["restored"].get("restored"),
        "held_open": pinned.get("held_open", []),
        "verified": verified,
        "failed": failed,
        "held_back": gather("held_back"),
        "problems": sorted(set(problems), key=problems.index),
    }


def fleet_summary(records):
    """The fleet's figures, computed once for every consumer (pages, console summary, AWX stats).

    hosts and status_counts, found/freed bytes, processes stopped, items removed, files restored, every failure
    and held-back item with its host, freed bytes per host and per target.  JSON-serialisable.
    """
    if not isinstance(records, list):
        raise AnsibleFilterError("residue_fleet_summary expects a list of host records")
    records = sorted(records, key=lambda r: r.get("host", ""))
    by_target = {}
    counts = {}
    for rec in records:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        for target, freed in rec.get("freed_by_target", {}).items():
            by_target[target] = by_target.get(target, 0) + freed
    restored = [r["restored"] for r in records if r.get("restored")]
    return {
        "hosts": len(records),
        "status_counts": counts,
        "freed_bytes": sum(r.get("freed_bytes", 0) for r in records),
        "found_bytes": sum(r.get("found", {}).get("total_bytes", 0) for r in records),
        "stopped": sum(len(r.get("stopped", [])) for r in records),
        "removed_items": sum(len(r.get("removed", [])) for r in records),
        "restored_files": sum(int(x.get("files") or 0) for x in restored),
        "restored_archives": len(restored),
        "by_host": [[r["host"], r.get("freed_bytes", 0)] for r in records],
        "by_target": [[t, b] for t, b in sorted(by_target.items())],
        "failures": [dict(f, host=r["host"]) for r in records for f in r.get("failed", [])],
        "held_back": [dict(h, host=r["host"]) for r in records for h in r.get("held_back", [])],
    }


# ---------------------------------------------------------------- wording per mode
# (kind, preview) -> the words of the pages and the console.  kind: purge (audit is a purge preview), prune, restore.
_WORDS = {
    ("purge", False): {
        "title": "Residue purge report", "items_heading": "What was removed, host by host",
        "freed": "Freed", "items_label": "Removed items", "items_lc": "item(s) removed", "nothing": "Nothing removed.",
        "stopped": "Processes stopped", "stopped_short": "Stopped", "stopped_lc": "process(es) stopped",
        "autostart": "Autostart removed", "banner": ""},
    ("purge", True): {
        "title": "Residue purge preview", "items_heading": "What a purge would remove, host by host",
        "freed": "Would free", "items_label": "Items to remove", "items_lc": "item(s) to remove",
        "nothing": "Nothing to remove.", "stopped": "Processes to stop", "stopped_short": "To stop",
        "stopped_lc": "process(es) to stop", "autostart": "Autostart to remove",
        "banner": "Check mode: nothing was changed. The figures below are the plan of a purge."},
    ("prune", False): {
        "title": "Cache prune report", "items_heading": "What was pruned, host by host",
        "freed": "Freed", "items_label": "Pruned items", "items_lc": "item(s) pruned", "nothing": "Nothing pruned.",
        "banner": ""},
    ("prune", True): {
        "title": "Cache prune preview", "items_heading": "What a prune would remove, host by host",
        "freed": "Would free", "items_label": "Items to prune", "items_lc": "item(s) to prune",
        "nothing": "Nothing to prune.",
        "banner": "Check mode: nothing was changed. The figures below are the plan of a prune."},
    ("restore", False): {
        "title": "Restore report", "items_heading": "What was restored, host by host", "nothing": "Nothing restored.",
        "restored_lc": "restored", "banner": ""},
    ("restore", True): {
        "title": "Restore preview", "items_heading": "What a restore would put back, host by host",
        "nothing": "Nothing to restore.", "restored_lc": "would restore",
        "banner": "Check mode: nothing was changed."},
}


def wording(run):
    """The headings and labels of a run's pages and console summary, by what the playbook did and check mode."""
    run = run if isinstance(run, dict) else {}
    playbook = run.get("playbook") or "purge"
    kind = playbook if playbook in ("prune", "restore") else "purge"
    preview = bool(run.get("check_mode"))
    words = dict(_WORDS[(kind, preview)], kind=kind, preview=preview, stops=kind == "purge",
                 frees=kind != "restore")
    if playbook == "audit":
        words.update(title="Residue audit",
                     banner="An audit changes nothing: the figures below are the plan of a purge (what it would "
                            "stop, remove and free).")
    return words


def _headline(summary, words):
    """The run in one sentence: hosts by status, then the figures that mean something for this kind of run."""
    hosts = "%d host(s): %s" % (summary["hosts"], ", ".join(
        "%d %s" % (n, s) for s, n in sorted(summary["status_counts"].items())) or "none")
    if words["kind"] == "restore":
        figures = ["%s %d file(s) from %d archive(s)" % (words["restored_lc"], summary["restored_files"],
                                                         summary["restored_archives"])]
    else:
        figures = ["found %s" % human_bytes(summary["found_bytes"]),
                   "%s %s" % (words["freed"].lower(), human_bytes(summary["freed_bytes"]))]
        if words["stops"]:
            figures.append("%d %s" % (summary["stopped"], words["stopped_lc"]))
        figures.append("%d %s" % (summary["removed_items"], words["items_lc"]))
    if summary["held_back"]:
        figures.append("%d held back" % len(summary["held_back"]))
    if summary["failures"]:
        figures.append("%d failure(s)" % len(summary["failures"]))
    return "%s; %s" % (hosts, ", ".join(figures))


def fleet(records, run=None):
    """fleet_summary plus the sorted host records, the run's wording and its headline: what the pages render."""
    view = fleet_summary(records)
    view["records"] = sorted(records, key=lambda r: r.get("host", ""))
    view["run"] = run if isinstance(run, dict) else {}
    view["words"] = wording(run)
    view["headline"] = _headline(view, view["words"])
    view["chart_hosts"] = any(freed for _host, freed in view["by_host"])  # an empty chart is not drawn
    view["chart_targets"] = any(freed for _target, freed in view["by_target"])
    return view


MODEL_KINDS = ("hf_repo", "ollama_model", "modelscope_model")  # removed as "<name> in <store>"


def _removed_what(item):
    if item["kind"] in MODEL_KINDS:
        return "%s in %s" % (item.get("repo_id"), item.get("cache"))
    if item["kind"] == "pip":
        return "%s in %s" % (item.get("package"), item.get("path"))
    return item.get("path")


def summary_lines(view, report_dir=""):
    """The console summary of a run (residue_fleet's output): one line per host, per item, per failure.

    Every name is shown with text(): a hostile file name cannot break a line or drive the terminal.
    """
    if not isinstance(view, dict) or "words" not in view:
        raise AnsibleFilterError("residue_summary_lines expects the output of residue.purge.residue_fleet")
    words = view["words"]
    run_id = view["run"].get("run_id") or ""
    lines = ["%s %s%s" % (words["title"], text(run_id), " (%s)" % words["banner"] if words["banner"] else ""),
             "report: %s/fleet.html (fleet.md, fleet.json, hosts/<host>.json)" % text(report_dir),
             view["headline"]]
    for rec in view["records"]:
        if words["kind"] == "restore":
            restored = rec.get("restored") or {}
            detail = ("%s %d file(s) from %s" % (words["restored_lc"], restored.get("files") or 0,
                                                 text(restored.get("archive"))) if restored else words["nothing"])
        else:
            detail = "found %s in %d residue(s), %s %s" % (
                human_bytes(rec["found"]["total_bytes"]), len(rec["found"]["residues"]), words["freed"].lower(),
                human_bytes(rec["freed_bytes"]))
            if rec.get("verified"):
                detail += ", verified %s" % ("clean" if rec["verified"]["clean"] else "NOT clean")
        lines.append("  %s: %s, %s" % (text(rec["host"]), rec["status"], detail))
        for item in rec.get("removed", []):
            lines.append("    - %s %s %s" % (item["kind"], text(_removed_what(item)), human_bytes(item["bytes"])))
        for entry in rec.get("held_back", []):
            lines.append("    held back: %s %s (%s: %s)%s" % (
                entry["kind"], text(entry["item"]), text(entry["reason"]), text(entry.get("detail")),
                " -- its holder is stopped first in a real run" if words["preview"] and entry["kind"] == "hf_repo"
                and words["stops"] else ""))
        for problem in rec.get("problems", []):
            lines.append("    problem: %s" % text(problem))
    for fail in view["failures"]:
        lines.append("  FAILED %s [%s] %s%s" % (text(fail["host"]), text(fail["phase"]),
                                                "%s: " % text(fail["item"]) if fail["item"] else "", text(fail["error"])))
    return lines


def bar_svg(pairs, title="", width=480):
    """A horizontal bar chart as self-contained inline SVG: one bar per (label, bytes) pair."""
    pairs = [(text(label), int(value or 0)) for label, value in pairs]
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
            "residue_host_results": host_results,
            "residue_fleet": fleet,
            "residue_fleet_summary": fleet_summary,
            "residue_summary_lines": summary_lines,
            "residue_text": text,
            "residue_md": md_code,
            "residue_bar_svg": bar_svg,
            "residue_human_bytes": human_bytes,
        }
