# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's contract, stated from the modules' side: what of each real result must reach the audit record.

Shared by the unit contract test (the record) and tests/integration/test_report_contract.py (the pages).  The
fixtures are real results stored by tests/integration/report_scenarios.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "module_results")
SCENARIOS = ("clean", "partial", "preview")
# Results of the win_*.ps1 modules, constructed from their code and checked against their win_*.py RETURN (no
# Windows host runs here to capture them); each scenario's `note` says so.  The Windows modules' docs apply.
WINDOWS_SCENARIOS = ("windows",)
ALL_SCENARIOS = SCENARIOS + WINDOWS_SCENARIOS

# A key whose name says "something went wrong or was left": the report must carry it (RESULT_KEYS not None)
# and EXPECTED below must say where it shows.
FAILURE_LIKE = re.compile(r"fail|error|surviv|problem|held|spare|refus|denied|reject|remain|left|broken|skip"
                          r"|namespace|unreach|conflict")

# (module, key) -> (record part, fields of each item that must be shown in one entry of that part);
# None as fields: the item is a string, shown whole.
EXPECTED = {
    ("discover", "problems"): ("problems", None),
    ("autostart", "failures"): ("failed", ("path", "error")),
    ("autostart", "problems"): ("problems", None),
    # Windows autostart entries show like systemd units: one autostart entry each, named in the pages
    ("autostart", "services"): ("autostart", ("name",)),
    ("autostart", "scheduled_tasks"): ("autostart", ("path", "name")),
    ("autostart", "run_keys"): ("autostart", ("key", "name", "command")),
    ("autostart", "startup_items"): ("autostart", ("path",)),
    ("reap", "terminated"): ("stopped", ("name", "pid")),
    ("reap", "survivors"): ("failed", ("name", "pid", "error")),
    ("reap", "spared"): ("held_back", ("name", "pid")),
    ("reap", "other_namespaces"): ("held_back", ("name", "pid", "cgroup")),
    ("reap", "problems"): ("problems", None),
    ("hf_cache", "deleted"): ("removed", ("repo_id", "cache")),
    ("hf_cache", "held_back"): ("held_back", ("repo_id", "cache", "reason", "detail")),
    ("hf_cache", "failures"): ("failed", None),
    ("hf_cache", "problems"): ("problems", None),
    ("model_budget", "removed"): ("removed", ("name", "store")),
    ("model_budget", "held_back"): ("held_back", ("name", "store", "reason", "detail")),
    ("model_budget", "failures"): ("failed", None),
    ("model_budget", "problems"): ("problems", None),
    ("ollama_models", "removed"): ("removed", ("model", "store")),
    ("ollama_models", "swept"): ("removed", ("path",)),
    ("ollama_models", "held_back"): ("held_back", ("name", "store", "reason", "detail")),
    ("ollama_models", "failures"): ("failed", None),
    ("ollama_models", "problems"): ("problems", None),
    ("modelscope_models", "removed"): ("removed", ("model_id", "cache")),
    ("modelscope_models", "held_back"): ("held_back", ("model_id", "cache", "reason", "detail")),
    ("modelscope_models", "failures"): ("failed", None),
    ("modelscope_models", "problems"): ("problems", None),
    ("remove", "removed"): ("removed", ("path",)),
    ("remove", "failures"): ("failed", ("path", "error")),
    ("remove", "failed_count"): ("failed", "count"),
    ("remove", "problems"): ("problems", None),
    ("pip_remove", "problems"): ("problems", None),
    ("open_deleted", "terminated"): ("stopped", ("name", "pid")),
    ("open_deleted", "survivors"): ("failed", ("name", "pid", "error")),
    ("open_deleted", "spared"): ("held_back", ("name", "pid")),
    ("open_deleted", "other_namespaces"): ("held_back", ("name", "pid", "cgroup")),
    ("open_deleted", "remaining"): ("failed", ("path",)),
    ("open_deleted", "problems"): ("problems", None),
}


def load(scenario):
    with open(os.path.join(FIXTURES, scenario + ".json")) as f:
        return json.load(f)


# steps of a scenario that fill no slot: check_vars fails the preflight, whose rescue records its message
RESCUED = {"vars": "preflight"}


def rescued(step):
    """What the phase's rescue records (preflight_failure etc.) when the step failed: {phase, task, msg}."""
    return {"phase": RESCUED[step["slot"]], "task": "Check the variables on the host (homes, backup dir) and probe "
            "it (psutil, free space for the backup)", "msg": step["result"]["msg"]}


def slots(doc):
    """{slot: registered result} as the report role hands them to residue_host_record (a failed check_vars: the
    preflight rescue's `failure`)."""
    out = dict((step["slot"], step["result"]) for step in doc["steps"] if step["slot"] not in RESCUED)
    for step in doc["steps"]:
        if step["slot"] in RESCUED and step["result"].get("failed"):
            out.setdefault("failure", rescued(step))
    return out


def expectations(doc):
    """[(record part, [texts that one entry of that part must show], what)] for one scenario's results.

    Every removed item, failure, held-back item, stopped process and problem of the real results, plus each
    task's own failure message.
    """
    out = []
    for step in doc["steps"]:
        module, result = step["module"], step["result"]
        if result.get("failed") is True:
            out.append(("failed", [result["msg"]], "%s: the task's message" % module))
        for (mod, key), (part, fields) in sorted(EXPECTED.items()):
            if mod != module or key not in result:
                continue
            if fields == "count":
                continue  # a count above the listed failures: unit-tested with a made-up count
            items = result[key]
            if key == "remaining":  # a handle of a spared process is held back, not a failure
                spared = set(p["pid"] for p in result.get("spared", []))
                items = [h for h in items if h["pid"] not in spared]
            for item in items:
                texts = [item] if fields is None else [str(item[f]) for f in fields if item.get(f) not in (None, "")]
                out.append((part, texts, "%s.%s" % (module, key)))
        if module == "pip_remove":
            for env in result.get("environments", []):
                for pkg in env.get("removed", []) + env.get("orphans_removed", []):
                    out.append(("removed", [pkg["name"], env["path"]], "pip_remove.environments[].removed"))
                if env.get("status") == "failed" or (env.get("status") == "broken" and env.get("found")):
                    out.append(("failed", [env["path"], env["error"]], "pip_remove.environments[] failed"))
                if env.get("status") == "externally_managed" and env.get("found"):
                    out.append(("held_back", [env["path"]], "pip_remove.environments[] externally managed"))
                for kept in env.get("kept_shared", []):
                    if kept["name"] in result.get("packages", []):
                        out.append(("held_back", [kept["name"], env["path"]], "pip_remove kept_shared (named)"))
    return out


def entry_text(entry):
    """Everything one record entry shows, as one string (a str entry is itself)."""
    if not isinstance(entry, dict):
        return str(entry)
    return " ".join(str(v) for v in entry.values())
