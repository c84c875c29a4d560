# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report role's aggregation: host records, fleet summary, SVG chart, mount lookup."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import json
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings, strategies as st
from markdown_it import MarkdownIt

from ansible.errors import AnsibleFilterError
from ansible_collections.residue.purge.plugins.filter.report import (
    bar_svg, fleet, host_record, human_bytes, md_code, summary_lines, text, wording)

RUN = {"run_id": "20261126T140000Z-purge-1", "started": "2026-11-26 14:00:00", "targets": ["open_autoglm"],
       "check_mode": False, "completed": True, "reachable": True}

FOUND = {
    "changed": False,
    "residues": [
        {"target": "open_autoglm", "kind": "path", "path": "/home/alice/.cache/open-autoglm", "user": "alice", "bytes": 4096},
        {"target": "open_autoglm", "kind": "hf_repo", "path": "/data/hf/hub/models--zai-org--AutoGLM-Phone-9B",
         "user": "root", "bytes": 3145728, "repo_id": "zai-org/AutoGLM-Phone-9B"},
        {"target": "ollama", "kind": "path", "path": "/home/alice/.ollama/models", "user": "alice", "bytes": 100},
    ],
    "processes": [{"pid": 42, "name": "open-autoglm", "user": "root", "target": "open_autoglm"}],
    "packages": [{"name": "open-autoglm", "version": "0.4.0", "environment": "/opt/ml/venv", "target": "open_autoglm"}],
    "hf_caches": [{"path": "/data/hf/hub", "user": "root", "source": "process 42 (HF_HOME)"}],
    "total_bytes": 3149924,
    "problems": [],
}


def full_results():
    return {
        "found": FOUND,
        "reaped": {"changed": True, "terminated": [{"pid": 42, "name": "open-autoglm", "user": "root", "outcome": "exited"}],
                   "survivors": []},
        "autostart": {"changed": True, "units": [{"scope": "system", "unit": "open-autoglm.service", "paths": []}],
                      "cron": [{"path": "/var/spool/cron/crontabs/alice", "removed_lines": ["@reboot open-autoglm"]}],
                      "xdg": [], "launchd": [], "failures": []},
        "hf": {"changed": True, "deleted": [{"cache": "/data/hf/hub", "repo_id": "zai-org/AutoGLM-Phone-9B", "repo_type": "model",
                                             "revisions": ["d4" * 20], "freed_bytes": 3145728}], "freed_bytes": 3145728},
        "removed": {"changed": True, "removed": [{"path": "/home/alice/.cache/open-autoglm", "bytes": 4096, "files": 1, "owner": "alice",
                                                  "target": "open_autoglm"},
                                                 {"path": "/home/alice/.ollama/models/x", "bytes": 100, "files": 1, "owner": "alice"}],
                    "freed_bytes": 4196, "failures": [], "backup": {"path": "/var/backups/r.tar.gz", "bytes": 900}},
        "pip": {"changed": True, "environments": [{"path": "/opt/ml/venv", "removed": [{"name": "open-autoglm", "version": "0.4.0"}],
                                                   "orphans_removed": [{"name": "autoglm-core", "version": "0.4.1"}]}]},
        "pinned": {"changed": True, "handles": [{"pid": 7, "name": "tail", "path": "/home/bob/x.log", "bytes": 10}], "remaining": []},
        "after": {"residues": [], "processes": [], "packages": [], "total_bytes": 0},
        "failure": None,
    }


def test_record_of_a_clean_purge_attributes_bytes_to_targets():
    rec = host_record(full_results(), "h1", RUN)
    assert rec["status"] == "ok"
    assert rec["freed_bytes"] == 4096 + 100 + 3145728
    assert rec["freed_by_target"] == {"open_autoglm": 4096 + 3145728, "ollama": 100}
    assert [i["kind"] for i in rec["removed"]].count("pip") == 2
    assert rec["verified"]["clean"] is True
    assert rec["backed_up"]["path"] == "/var/backups/r.tar.gz"
    assert rec["stopped"] == [{"phase": "stop", "pid": 42, "name": "open-autoglm", "user": "root", "outcome": "exited",
                               "why": "matched"}]
    assert rec["failed"] == []
    assert [a["kind"] for a in rec["autostart"]] == ["systemd", "cron"]
    json.dumps(rec)  # the record is written as JSON


def test_leftovers_make_verification_not_clean():
    results = full_results()
    results["after"] = dict(results["after"], residues=[{"target": "open_autoglm", "kind": "path", "path": "/x", "bytes": 1}])
    assert host_record(results, "h1", RUN)["verified"]["clean"] is False


def test_partial_failures_are_listed_item_by_item():
    results = full_results()
    results["removed"] = dict(results["removed"], failures=[{"path": "/home/alice/.cache/open-autoglm/immutable", "error": "EPERM"}])
    results["autostart"] = dict(results["autostart"], failures=[{"unit": "open-autoglm.service", "error": "mask failed"}])
    results["reaped"] = dict(results["reaped"], survivors=[{"pid": 99, "name": "open-autoglm", "error": "still alive after KILL"}])
    results["failure"] = {"phase": "stop", "task": "Fail the host", "msg": "1 process survived"}
    rec = host_record(results, "h1", dict(RUN, completed=False))
    assert rec["status"] == "failed"
    assert {"phase": "sweep", "item": "/home/alice/.cache/open-autoglm/immutable", "error": "EPERM"} in rec["failed"]
    assert {"phase": "stop", "item": "open-autoglm (pid 99)", "error": "still alive after KILL"} in rec["failed"]
    assert {"phase": "stop", "item": "open-autoglm.service", "error": "mask failed"} in rec["failed"]
    assert {"phase": "stop", "item": "Fail the host", "error": "1 process survived"} in rec["failed"]


def test_unreachable_host_is_shown_not_dropped():
    rec = host_record({}, "h9", dict(RUN, completed=False, reachable=False))
    assert rec["status"] == "unreachable"
    assert rec["failed"] and rec["failed"][0]["phase"] == "connect"
    assert rec["freed_bytes"] == 0 and rec["verified"] is None


def test_host_that_stopped_without_a_recorded_failure_is_failed():
    rec = host_record({"found": FOUND}, "h2", dict(RUN, completed=False))
    assert rec["status"] == "failed" and rec["failed"]


def test_check_mode_is_a_preview_and_skipped_tasks_count_as_not_run():
    results = full_results()
    results["after"] = {"skipped": True, "changed": False}
    results["pinned"] = {"skipped": True}
    rec = host_record(results, "h1", dict(RUN, check_mode=True))
    assert rec["status"] == "preview" and rec["check_mode"] is True
    assert rec["verified"] is None


def test_fleet_sums_hosts_and_targets_and_lists_every_failure():
    ok = host_record(full_results(), "b-host", RUN)
    down = host_record({}, "a-host", dict(RUN, completed=False, reachable=False))
    f = fleet([ok, down])
    assert f["hosts"] == 2
    assert f["status_counts"] == {"ok": 1, "unreachable": 1}
    assert f["freed_bytes"] == ok["freed_bytes"]
    assert f["by_host"] == [["a-host", 0], ["b-host", ok["freed_bytes"]]]
    assert dict(f["by_target"]) == ok["freed_by_target"]
    assert [x["host"] for x in f["failures"]] == ["a-host"]


def test_bar_svg_is_wellformed_escaped_and_proportional():
    svg = bar_svg([("<script>alert(1)</script>", 100), ("b&c", 50), ("zero", 0)], title="Freed & co")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    rects = root.findall(ns + "rect")
    assert len(rects) == 3
    widths = [int(r.get("width")) for r in rects]
    assert widths[0] == 2 * widths[1] or abs(widths[0] - 2 * widths[1]) <= 1
    assert widths[2] == 1  # a zero bar stays visible as a hairline
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # no external asset


@pytest.mark.parametrize("value, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 1024 ** 3, "3.0 GiB")])
def test_human_bytes(value, text):
    assert human_bytes(value) == text


def test_human_bytes_rejects_garbage():
    with pytest.raises(AnsibleFilterError):
        human_bytes("lots")


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError):
        host_record("nope", "h", RUN)
    with pytest.raises(AnsibleFilterError):
        fleet({"not": "a list"})


def test_pip_environment_failures_and_held_back_repos_are_reported():
    results = full_results()
    results["pip"] = {"changed": True, "packages": ["open-autoglm"], "environments": [
        {"path": "/opt/a", "status": "failed", "error": "pip exited 1", "removed": []},
        {"path": "/opt/b", "status": "broken", "error": "interpreter missing", "removed": []},
        {"path": "/usr", "status": "externally_managed", "error": "EXTERNALLY-MANAGED", "found": [{"name": "open-autoglm"}]},
        {"path": "/opt/c", "status": "changed", "removed": [],
         "kept_shared": [{"name": "open-autoglm", "version": "1", "required_by": ["vllm"]}]}],
        "problems": ["/opt/b (venv): broken: interpreter missing"]}
    results["hf"] = dict(results["hf"], held_back=[{"cache": "/data/hf/hub", "repo_id": "zai-org/AutoGLM-Phone-9B",
                                                    "reason": "locked", "detail": "pid 5"}])
    rec = host_record(results, "h1", RUN)
    assert {"phase": "sweep", "item": "/opt/a", "error": "pip exited 1"} in rec["failed"]
    assert any("/opt/b" in p and "broken" in p for p in rec["problems"])
    assert [(h["kind"], h["item"], h["reason"]) for h in rec["held_back"]] == [
        ("hf_repo", "zai-org/AutoGLM-Phone-9B in /data/hf/hub", "locked"),
        ("environment", "/usr", "externally_managed"),
        ("pip", "open-autoglm in /opt/c", "required")]
    assert rec["held_back"][2]["detail"] == "required by vllm"


def test_ansible_coerced_failed_flag_is_not_an_item_list():
    results = full_results()
    results["hf"] = dict(results["hf"], failed=False)  # Ansible replaces a module's `failed` list with its flag
    results["removed"] = dict(results["removed"], failed=False)
    assert host_record(results, "h1", RUN)["failed"] == []


def test_restore_is_recorded():
    rec = host_record({"restored": {"changed": True, "src": "/var/backups/r.tar.gz", "files": ["a", "b"]}}, "h1",
                      dict(RUN, targets=[]))
    assert rec["restored"] == {"archive": "/var/backups/r.tar.gz", "files": 2}
    assert rec["status"] == "ok"


def test_hf_cache_failures_reach_the_record_one_by_one():
    # the shape hf_cache returns when removals fail: `failures` is a list of "path: error" lines (Ansible
    # overwrites a module's own `failed` key with the task status, so the module never returns it as a list)
    results = full_results()
    lines = ["/data/hf/hub/models--zai-org--AutoGLM-Phone-9B/blobs/%s: Operation not permitted" % ("a" * 64),
             "/data/hf/hub/models--zai-org--AutoGLM-Phone-9B/snapshots/%s: Operation not permitted" % ("d4" * 20),
             "/data/hf/hub/models--zai-org--AutoGLM-Phone-9B: Directory not empty"]
    results["hf"] = dict(results["hf"], failed=True, failures=lines,
                         msg="hf_cache: 3 removal(s) failed, first: " + lines[0])
    rec = host_record(results, "h1", RUN)
    assert rec["status"] == "failed"
    errors = [f["item"] + ": " + f["error"] if f["item"] else f["error"] for f in rec["failed"] if f["phase"] == "sweep"]
    for line in lines:
        assert line in errors, (line, rec["failed"])


def test_more_failures_than_the_module_lists_are_counted():
    results = full_results()
    results["removed"] = dict(results["removed"], failed=True, msg="201 entries could not be removed",
                              failures=[{"path": "/x/%d" % i, "error": "EPERM"} for i in range(200)], failed_count=201)
    rec = host_record(results, "h1", RUN)
    assert len([f for f in rec["failed"] if f["item"].startswith("/x/")]) == 200
    assert {"phase": "sweep", "item": "", "error": "1 more entries could not be removed (the module lists the first 200)"} \
        in rec["failed"]


def test_handles_left_after_terminate_fail_unless_their_holder_was_spared():
    results = full_results()
    results["pinned"] = {"changed": True, "handles": [], "terminated": [],
                         "spared": [{"pid": 1, "name": "init", "reason": "protected"}],
                         "remaining": [{"pid": 1, "name": "init", "path": "/a", "bytes": 5},
                                       {"pid": 7, "name": "tail", "path": "/b", "bytes": 6}]}
    rec = host_record(results, "h1", RUN)
    assert [f["item"] for f in rec["failed"]] == ["/b"]
    assert rec["held_back"] == [{"phase": "verify", "kind": "process", "item": "init (pid 1)", "reason": "spared",
                                 "detail": "protected", "user": None}]
    assert rec["verified"]["pinned_bytes"] == 11 and rec["verified"]["clean"] is False


def test_pip_packages_are_attributed_to_the_target_that_found_them():
    results = full_results()
    results["pip"]["environments"][0]["path"] = "/opt/ml/venv"
    rec = host_record(results, "h1", dict(RUN, targets=["open_autoglm", "ollama"]))
    targets = dict((i["package"].split()[0], i["target"]) for i in rec["removed"] if i["kind"] == "pip")
    assert targets == {"open-autoglm": "open_autoglm", "autoglm-core": "unattributed"}


# ---------------------------------------------------------------- names on the pages, wording per mode

GFM = MarkdownIt("commonmark").enable("table")


@pytest.mark.parametrize("raw, shown", [
    ("plain/path with spaces", "plain/path with spaces"),
    ("a\nb\r\tc", "a\\nb\\r\\tc"),
    ("esc\x1b[2Jbell\x07del\x7fc1\x85", "esc\\x1b[2Jbell\\x07del\\x7fc1\\x85"),
    ("bad\udcff\udcc3", "bad\\xff\\xc3"),  # a str with surrogate escapes shows the bytes as modules do
    ("already\\xff", "already\\xff"),  # what modules return for such bytes stays as it is
    ("rtl\u202eevil\u2066zw\u200bls\u2028", "rtl\\u202eevil\\u2066zw\\u200bls\\u2028"),
    ("é 中文 🙂 <b>|`", "é 中文 🙂 <b>|`"),
    (None, ""), (42, "42"),
])
def test_text_is_one_line_with_every_character_shown(raw, shown):
    assert text(raw) == shown


def cell_text(markdown_cell):
    """Render `| x |` as a one-row GFM table; the cell's content, and every tag of the rendered HTML."""
    html = GFM.render("| h |\n|---|\n| %s |\n" % markdown_cell)
    tags = re.findall(r"<(\w+)", html)
    body = html.split("<tbody>")[1]
    cells = re.findall(r"<td>(.*?)</td>", body, re.S)
    return cells, tags


MARKUP = st.sampled_from(list("`|\\ <>*_[]()&;#!~=-:\n\r\t\x1b\u202e") + ["&amp;", "<b>", "```", "\\|"])


@settings(max_examples=500, deadline=None)
@given(st.lists(MARKUP | st.characters(), max_size=30).map("".join))
def test_md_code_shows_any_name_literally_in_one_table_cell(name):
    cells, tags = cell_text(md_code(name))
    assert len(cells) == 1, (name, cells)
    assert set(tags) <= {"table", "thead", "tr", "th", "tbody", "td", "code"}, (name, tags)
    shown = text(name)
    if shown:
        code = re.fullmatch(r"<code>(.*)</code>", cells[0], re.S)
        assert code, (name, cells[0])
        assert html_unescape(code.group(1)) == shown, (name, code.group(1))


def html_unescape(value):
    return html.unescape(value)


@pytest.mark.parametrize("name", ["a|b", "`tick`", "``", "` lead", "trail `", " ", "<script>x</script>",
                                  "[l](javascript:x)", "**b**", "\\|", "a\\", "&amp;", "x\ny"])
def test_md_code_markup_examples(name):
    cells, tags = cell_text(md_code(name))
    assert html_unescape(re.fullmatch(r"<code>(.*)</code>", cells[0], re.S).group(1)) == text(name)


def test_md_code_outside_a_table_keeps_pipes():
    assert md_code("a|b", cell=False) == "`a|b`"
    assert GFM.render("# " + md_code("x|`y`", cell=False)) == "<h1><code>x|`y`</code></h1>\n"


@pytest.mark.parametrize("playbook, check, title, heading", [
    ("purge", False, "Residue purge report", "What was removed, host by host"),
    ("purge", True, "Residue purge preview", "What a purge would remove, host by host"),
    ("audit", True, "Residue audit", "What a purge would remove, host by host"),
    ("prune", False, "Cache prune report", "What was pruned, host by host"),
    ("prune", True, "Cache prune preview", "What a prune would remove, host by host"),
    ("restore", False, "Restore report", "What was restored, host by host"),
    ("restore", True, "Restore preview", "What a restore would put back, host by host"),
])
def test_each_mode_has_its_own_words(playbook, check, title, heading):
    words = wording({"playbook": playbook, "check_mode": check})
    assert (words["title"], words["items_heading"]) == (title, heading)
    assert bool(words["banner"]) == check
    assert words["stops"] == (playbook in ("purge", "audit")) and words["frees"] == (playbook != "restore")


def test_restore_summary_counts_files_not_bytes():
    rec = host_record({"restored": {"changed": True, "src": "/b/r.tar.gz", "files": ["a", "b", "c"]}}, "h1",
                      dict(RUN, targets=[]))
    view = fleet([rec], {"playbook": "restore", "run_id": "r1", "check_mode": False})
    lines = summary_lines(view, "/rep/r1")
    assert lines[0] == "Restore report r1"
    assert lines[2] == "1 host(s): 1 ok; restored 3 file(s) from 1 archive(s)"
    assert lines[3] == "  h1: ok, restored 3 file(s) from /b/r.tar.gz"
    assert not any("found" in line or "freed" in line for line in lines)
    assert view["chart_hosts"] is False and view["chart_targets"] is False


def test_purge_summary_one_line_per_item_and_failure_with_names_escaped():
    results = full_results()
    results["removed"] = dict(results["removed"], failures=[{"path": "/h/a\nb\x1b[2J", "error": "EPERM"}])
    view = fleet([host_record(results, "h1", RUN)], {"playbook": "purge", "run_id": "r2"})
    lines = summary_lines(view, "/rep/r2")
    assert lines[2] == ("1 host(s): 1 failed; found 3.0 MiB, freed 3.0 MiB, 1 process(es) stopped, 5 item(s) "
                        "removed, 1 failure(s)")
    assert "  FAILED h1 [sweep] /h/a\\nb\\x1b[2J: EPERM" in lines
    assert [line for line in lines if line.startswith("    - ")] == [
        "    - path /home/alice/.cache/open-autoglm 4.0 KiB", "    - path /home/alice/.ollama/models/x 100 B",
        "    - hf_repo zai-org/AutoGLM-Phone-9B in /data/hf/hub 3.0 MiB",
        "    - pip open-autoglm 0.4.0 in /opt/ml/venv 0 B", "    - pip autoglm-core 0.4.1 in /opt/ml/venv 0 B"]
    assert all("\n" not in line and "\x1b" not in line for line in lines)
    assert view["chart_hosts"] and view["chart_targets"]


def test_summary_lines_wants_the_fleet_view():
    with pytest.raises(AnsibleFilterError):
        summary_lines({"hosts": 1})
