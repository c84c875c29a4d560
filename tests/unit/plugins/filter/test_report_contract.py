# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The result contract between the modules and the report, on real results (fixtures/module_results/*.json,
captured by tests/integration/report_scenarios.py; test_report_contract.py there keeps them current).

- every key a module returns is documented in its RETURN and listed in the report filter's RESULT_KEYS;
- a failure-like key is carried into the record, and EXPECTED (report_contract.py) says where;
- every removed item, failure, held-back item, stopped process and problem of the results reaches the record.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import pytest
import yaml

from ansible_collections.residue.purge.plugins.filter.report import ANSIBLE_KEYS, RESULT_KEYS, host_record
from ansible_collections.residue.purge.tests.unit.plugins.filter import report_contract as contract

MODULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "plugins", "modules")
OURS = ("discover", "autostart", "reap", "hf_cache", "model_budget", "ollama_models", "modelscope_models", "remove",
        "pip_remove", "open_deleted")


def returned(scenarios=contract.ALL_SCENARIOS):
    """(scenario, module, result) of every stored result (a skipped task's result is no module's)."""
    for scenario in scenarios:
        for step in contract.load(scenario)["steps"]:
            if not step["result"].get("skipped"):
                yield scenario, step["module"], step["result"]


def return_doc(module, scenario="clean"):
    """The module's RETURN (its Windows twin's for a Windows scenario), parsed as ansible-doc parses it."""
    if scenario in contract.WINDOWS_SCENARIOS:
        module = "win_" + module
    with open(os.path.join(MODULES_DIR, module + ".py")) as f:
        text = f.read()
    start = text.index('RETURN = r"""') + len('RETURN = r"""')
    return yaml.safe_load(text[start:text.index('"""', start)])


def run_of(doc):
    return {"run_id": "contract", "started": "2026-01-01 00:00:00", "targets": [doc["target"]],
            "check_mode": doc["check_mode"], "completed": True, "reachable": True}


def test_the_fixtures_cover_every_module_with_success_and_partial_failure():
    seen = set((scenario, module) for scenario, module, _result in returned(contract.SCENARIOS))
    for module in OURS:
        assert ("clean", module) in seen and ("partial", module) in seen, module
    failed = set(module for scenario, module, result in returned(("partial",)) if result.get("failed"))
    assert failed >= {"autostart", "reap", "hf_cache", "model_budget", "ollama_models", "modelscope_models", "remove",
                      "pip_remove", "check_vars"}, failed
    for module in ("model_budget", "ollama_models", "modelscope_models"):  # each kind of item, in each scenario
        for scenario, m, result in returned(("clean", "partial")):
            if m == module:
                assert result["removed"], (scenario, module)
                assert bool(result["held_back"]) == (scenario == "partial"), (scenario, module, result["held_back"])
                assert bool(result["failures"]) == (scenario == "partial"), (scenario, module, result["failures"])


@pytest.mark.parametrize("module", OURS)
def test_every_returned_key_is_in_the_reports_contract(module):
    keys = set(k for _s, m, result in returned() if m == module for k in result) - ANSIBLE_KEYS
    assert keys, "no stored result of %s" % module
    unknown = sorted(keys - set(RESULT_KEYS[module]))
    assert not unknown, ("%s returns %s, which plugins/filter/report.py RESULT_KEYS[%r] does not list: add one "
                         "line saying what carries it into the host record (or None and why not)"
                         % (module, unknown, module))


@pytest.mark.parametrize("module", OURS)
def test_every_returned_key_is_documented_in_return(module):
    for scenario, m, result in returned():
        if m != module:
            continue
        doc = return_doc(module, scenario)
        for key, value in result.items():
            if key in ANSIBLE_KEYS:
                continue
            assert key in doc, "%s returns %r, which its RETURN does not document" % (module, key)
            contains = doc[key].get("contains")
            if contains and isinstance(value, list):
                for item in value:
                    extra = sorted(set(item) - set(contains))
                    assert not extra, "%s RETURN %s.contains lacks %s" % (module, key, extra)


@pytest.mark.parametrize("module", OURS)
def test_failure_like_keys_are_carried_and_expected(module):
    documented = set(return_doc(module))
    if os.path.exists(os.path.join(MODULES_DIR, "win_%s.py" % module)):
        documented |= set(return_doc(module, contract.WINDOWS_SCENARIOS[0]))
    seen = set(k for _s, m, result in returned() if m == module for k in result)
    for key in sorted((documented | seen | set(RESULT_KEYS[module])) - ANSIBLE_KEYS):
        if not contract.FAILURE_LIKE.search(key):
            continue
        assert RESULT_KEYS[module].get(key) is not None, (
            "%s.%s looks like a failure or something left behind, and the report does not carry it" % (module, key))
        assert (module, key) in contract.EXPECTED, "say in report_contract.EXPECTED where %s.%s shows" % (module, key)


@pytest.mark.parametrize("scenario", contract.ALL_SCENARIOS)
def test_every_item_of_the_real_results_reaches_the_host_record(scenario):
    doc = contract.load(scenario)
    record = host_record(contract.slots(doc), "h-" + scenario, run_of(doc))
    json.dumps(record)
    expected = contract.expectations(doc)
    assert expected, scenario
    for part, texts, what in expected:
        entries = [contract.entry_text(e) for e in record[part]]
        assert any(all(text in entry for text in texts) for entry in entries), (what, part, texts, record[part])


def test_partial_failure_is_a_failed_host_with_every_kind_of_entry():
    doc = contract.load("partial")
    record = host_record(contract.slots(doc), "h", run_of(doc))
    assert record["status"] == "failed"
    assert set(f["phase"] for f in record["failed"]) == {"preflight", "stop", "sweep"}
    held_back = sorted(set(h["kind"] for h in record["held_back"]))
    assert held_back == ["hf_repo", "modelscope_model", "ollama_model", "process"]
    assert record["verified"]["clean"] is False and record["verified"]["processes_left"] == 1
    assert [s["why"] for s in record["stopped"]] == ["holding-deleted"]  # the daemon survived the reap


def test_clean_purge_and_its_restore():
    doc = contract.load("clean")
    record = host_record(contract.slots(doc), "h", run_of(doc))
    assert record["status"] == "ok" and record["failed"] == [] and record["verified"]["clean"] is True
    assert record["freed_by_target"] == {doc["target"]: record["freed_bytes"]} and record["freed_bytes"] > 300000
    assert record["backed_up"]["sha256"] and record["restored"]["files"] >= 1
    removed = sorted(set(i["kind"] for i in record["removed"]))
    assert removed == ["hf_repo", "modelscope_model", "ollama_model", "path", "pip"]


def test_preview_is_the_plan():
    doc = contract.load("preview")
    record = host_record(contract.slots(doc), "h", run_of(doc))
    assert record["status"] == "preview" and record["verified"] is None
    assert [s["outcome"] for s in record["stopped"]] == ["would_stop"]
    assert record["removed"] and record["freed_bytes"] > 300000


def test_windows_fixture_has_every_windows_return_key():
    """The constructed Windows results set every key the win_*.ps1 modules always return (as their docs say)."""
    for _s, module, result in returned(contract.WINDOWS_SCENARIOS):
        doc = return_doc(module, "windows")
        always = set(k for k, v in doc.items() if v.get("returned", "always") == "always")
        assert always <= set(result), (module, sorted(always - set(result)))


def test_windows_host_shows_its_autostart_entries_like_units():
    """services, scheduled tasks, Run values and Startup items are autostart entries with a kind and a name."""
    doc = contract.load("windows")
    record = host_record(contract.slots(doc), "win1", run_of(doc))
    shown = [(a["kind"], a["item"]) for a in record["autostart"]]
    assert shown == [
        ("windows_service", "OllamaSvc (Ollama model server)"),
        ("scheduled_task", "\\Ollama\\OllamaUpdate"),
        ("run_key", "HKU\\S-1-5-21-1-2-3-1001\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Ollama = "
                    "\"C:\\Users\\ana\\AppData\\Local\\Programs\\Ollama\\ollama app.exe\""),
        ("startup_item", "C:\\Users\\ana\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\Ollama.lnk"),
    ]
    assert all(a["targets"] == ["ollama"] for a in record["autostart"])


def test_windows_host_record_attributes_and_fails_like_any_other():
    doc = contract.load("windows")
    run = dict(run_of(doc), targets=["ollama", "hf_models"])
    record = host_record(contract.slots(doc), "win1", run)
    assert record["status"] == "failed"
    assert set(f["phase"] for f in record["failed"]) == {"stop", "sweep"}
    # with two targets, a removed item without one is attributed by the discovered residue containing it:
    # Windows paths (backslashes, any case) as POSIX ones
    hf = [i for i in record["removed"] if i["kind"] == "hf_repo"]
    assert [i["target"] for i in hf] == ["hf_models"] and hf[0]["path"].endswith("\\models--org--tiny")
    assert record["freed_by_target"] == {"ollama": 8192, "hf_models": 65536}
    assert record["verified"]["clean"] is False and record["verified"]["residues_left"][0]["path"].endswith("models")
    assert [s["name"] for s in record["stopped"]] == ["ollama.exe"]


def test_windows_paths_are_attributed_by_containment_without_regard_to_case():
    """remove with explicit paths returns no target: the discovered residue that contains the path names it."""
    found = {"residues": [{"target": "ollama", "kind": "path", "path": "C:\\Users\\ana\\.ollama", "bytes": 10},
                          {"target": "lmstudio", "kind": "path", "path": "C:\\Users\\ana\\.ollama-old", "bytes": 1}],
             "total_bytes": 11}
    removed = {"removed": [{"path": "c:\\users\\ANA\\.ollama\\models", "target": None, "bytes": 7},
                           {"path": "C:\\Users\\ana\\.ollama-old\\x", "target": None, "bytes": 1},
                           {"path": "C:\\Users\\ana\\.ollamaX", "target": None, "bytes": 2}],
               "failures": [], "failed_count": 0, "problems": []}
    run = {"targets": ["ollama", "lmstudio"], "completed": True}
    record = host_record({"found": found, "removed": removed}, "win1", run)
    assert [i["target"] for i in record["removed"]] == ["ollama", "lmstudio", "unattributed"]


def test_processes_of_other_namespaces_are_held_back_with_their_container():
    from ansible_collections.residue.purge.plugins.filter.report import normalise  # pylint: disable=import-outside-toplevel
    parts = normalise("reap", {"terminated": [], "survivors": [], "spared": [], "problems": [], "other_namespaces": [
        {"pid": 9120, "name": "open-autoglm", "user": "root", "namespace": "pid:[4026532612]",
         "cgroup": "/system.slice/docker-3f2a9c1b7d4e.scope", "runtime": "docker", "container": "3f2a9c1b7d4e"}]},
        "stop")
    [entry] = parts["held_back"]
    assert entry["item"] == "open-autoglm (pid 9120)" and entry["reason"] == "other namespace"
    assert "docker container 3f2a9c1b7d4e" in entry["detail"] and "/system.slice/docker-3f2a9c1b7d4e.scope" in \
        entry["detail"]


# ---------------------------------------------------------------- the Windows twins' RETURN, as the report reads it

WINDOWS_TWINS = sorted(m for m in OURS if os.path.exists(os.path.join(MODULES_DIR, "win_%s.py" % m)))
SAMPLES = {"str": "x", "path": "x", "int": 1, "float": 1.0, "bool": True, "dict": {}, "list": [], "raw": "x"}


class Reading(dict):
    """A dict that notes every key the report's normalisers read of it (get, [], in), under a dotted path."""

    def __init__(self, values, path, seen):
        dict.__init__(self, values)
        self._path, self._seen = path, seen

    def _note(self, key):
        self._seen.add(self._path + str(key))

    def get(self, key, default=None):
        self._note(key)
        return dict.get(self, key, default)

    def __getitem__(self, key):
        self._note(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        self._note(key)
        return dict.__contains__(self, key)


def entry_keys(entry, doc=None):
    """The keys of a list's items (or a dict's) as RETURN documents them: its `contains`, else the C(key) words
    of its description (type unknown: None) plus, where it says "the keys of RV(other)", other's `contains`."""
    if entry.get("contains"):
        return entry["contains"]
    if entry.get("type") == "list" and entry.get("elements", "dict") != "dict":
        return {}
    words = entry.get("description", "")
    words = " ".join(words) if isinstance(words, list) else words
    out = {}
    for other in re.findall(r"\bkeys of RV\(([a-z_]+)\)", words):
        out.update((doc or {}).get(other, {}).get("contains") or {})
    out.update((word, {"type": None}) for word in re.findall(r"\bC\(([a-z_]+)\)", words) if word not in out)
    return out


def sample(entries, path, seen, doc=None):
    """A result (or list item) holding every key RETURN documents, each with a value of its type."""
    values = {}
    for key, entry in (entries or {}).items():
        keys = entry_keys(entry, doc)
        if entry.get("type") == "list" and keys:
            values[key] = [sample(keys, "%s%s[]." % (path, key), seen)]
        elif entry.get("type") == "dict" and keys:
            values[key] = sample(keys, "%s%s." % (path, key), seen)
        else:
            values[key] = SAMPLES.get(entry.get("type"), "x")
    return Reading(values, path, seen)


def documented(entries, path="", doc=None):
    """{dotted key path: type} of everything RETURN documents (list items as key[].sub)."""
    doc = entries if doc is None else doc
    out = {}
    for key, entry in (entries or {}).items():
        out[path + key] = entry.get("type")
        if entry.get("type") in ("list", "dict"):
            below = "%s%s%s." % (path, key, "[]" if entry.get("type") == "list" else "")
            out.update(documented(entry_keys(entry, doc), below, doc))
    return out


def read_by_report(module, doc):
    """The key paths of a result with doc's RETURN that the report's normalisers for module read."""
    seen = set()
    result = sample(doc, "", seen, doc)
    for key, carry in RESULT_KEYS[module].items():
        if carry is not None and key in doc:
            carry(dict.__getitem__(result, key), result, "sweep")
    return seen


def not_documented_for_windows(module, posix_doc, windows_doc):
    """[(key path, why)] of what the report reads of module's results (as posix_doc documents them) that
    windows_doc does not document the same way. A key its Windows RETURN says is never returned there is skipped."""
    posix, windows = documented(posix_doc), documented(windows_doc)
    never = set(k for k, v in windows_doc.items() if str(v.get("returned", "")).startswith("never"))
    out = []
    for path in sorted(read_by_report(module, posix_doc) & set(posix)):
        if path.split(".")[0].split("[")[0] in never:
            continue
        if path not in windows:
            out.append((path, "not documented"))
        elif windows[path] != posix[path]:
            out.append((path, "type %s, not %s" % (windows[path], posix[path])))
    return out


def _reading(value, path, seen):
    """value (a real result) with every dict in it a Reading (list items under key[])."""
    if isinstance(value, dict):
        return Reading(dict((k, _reading(v, path + k + ".", seen)) for k, v in value.items()), path, seen)
    if isinstance(value, list):
        return [_reading(v, path[:-1] + "[].", seen) for v in value]
    return value


def key_paths(value, path=""):
    out = set()
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(path + key)
            out |= key_paths(item, path + key + ".")
    elif isinstance(value, list):
        for item in value:
            out |= key_paths(item, path[:-1] + "[]." if path else "")
    return out


@pytest.mark.parametrize("module", OURS)
def test_what_the_report_reads_of_real_results_is_documented_in_return(module):
    """The record is built from RETURN's keys only: every key (and entry key) of a real result that the report's
    normalisers read is documented in the module's RETURN (`contains`, C(key) in the description, or "the keys
    of RV(other)")."""
    seen, there = set(), set()
    for _scenario, m, result in returned(contract.SCENARIOS):
        if m != module:
            continue
        there |= key_paths(result)
        wrapped = _reading(result, "", seen)
        for key, carry in RESULT_KEYS[module].items():
            if carry is not None and key in result:
                carry(dict.__getitem__(wrapped, key), wrapped, "sweep")
    read = (seen & there) - ANSIBLE_KEYS
    assert read, module
    undocumented = sorted(read - set(documented(return_doc(module))))
    assert not undocumented, "%s RETURN does not document %s, which the report reads" % (module, undocumented)


@pytest.mark.parametrize("module", WINDOWS_TWINS)
def test_the_windows_twin_documents_what_the_report_reads(module):
    """Each win_<name> module is normalised with <name>'s normalisers: every key (and entry key) of <name>'s RETURN
    that the report reads is documented in win_<name>'s RETURN too (in `contains`, or as C(key) in the
    description where <name>'s is), with the same type."""
    posix_doc = return_doc(module)
    assert read_by_report(module, posix_doc) & set(documented(posix_doc)), module
    assert not_documented_for_windows(module, posix_doc, return_doc(module, contract.WINDOWS_SCENARIOS[0])) == [], (
        "win_%s RETURN: document these as %s RETURN does (the report reads them)" % (module, module))


def test_the_windows_return_check_can_fail():
    """A Windows RETURN without an entry key the report reads (survivors' error, held_back's repo_id) is caught."""
    reap, win_reap = return_doc("reap"), return_doc("reap", "windows")
    assert "survivors[].error" in read_by_report("reap", reap)
    text = " ".join(win_reap["survivors"]["description"])
    crippled = dict(win_reap, survivors=dict(win_reap["survivors"], description=[text.replace("C(error)", "")]))
    assert not_documented_for_windows("reap", reap, crippled) == [("survivors[].error", "not documented")]
    hf, win_hf = return_doc("hf_cache"), return_doc("hf_cache", "windows")
    held = dict(win_hf["held_back"], contains=dict(win_hf["held_back"]["contains"], repo_id={"type": "int"}))
    assert not_documented_for_windows("hf_cache", hf, dict(win_hf, held_back=held)) == [
        ("held_back[].repo_id", "type int, not str")]
