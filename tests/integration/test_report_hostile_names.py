# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit record survives hostile names: real files and a real process whose names hold newlines, terminal
escapes, a bidi override, bytes that are not UTF-8 and markup (HTML, Markdown table pipes, backticks) go through a
real purge (playbooks/purge.yml on localhost) into hosts/*.json, fleet.md, fleet.html and the console summary.

Every name must show whole (as the report's text() escapes it), on one line, and never as markup: fleet.md is
rendered with markdown-it (CommonMark + GFM tables) and fleet.html parsed, and neither may contain an element the
templates did not write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
from markupsafe import escape

from conftest import REPO, VENV_PYTHON, ansible_env
from test_report_contract import page_texts
from ansible_collections.residue.purge.plugins.filter.report import text

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")

# the home of the residue: every residue path and every removed item carries it (valid UTF-8: it passes -e JSON)
HOME = u"ho\nme | <img src=x onerror=alert(1)> `tick` __bold__ \u202eevil"  # no glob characters: a profile path
# inside the residue, bytes: a file that cannot be removed (a failure) and one a process holds after it is deleted
STUCK = b"stuck\n<script>alert(2)&lt;b&gt;|cell|``two``[link](javascript:alert(3))**x**\x1b[2J\xff\xfe.bin"
HELD = b"held\r\n<marquee>x\t\x07|\xc3\x28.bin"
HOLDER_NAME = b"hold\n<i>x|`"  # the holder's executable: its process name (comm) is this
HOLDER = ("import os, sys, time\n"
          "fd = os.open(os.fsencode(sys.argv[1]), os.O_RDONLY)\n"
          "print('ready', flush=True)\n"
          "time.sleep(600)\n")
TEMPLATE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "span", "b", "code",
                 "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "figure", "svg", "text", "rect",
                 "ul", "li", "blockquote", "strong"}


def module_text(raw):
    """A name as the modules return it: bytes that are not UTF-8 as \\xNN (backslashreplace)."""
    return raw.decode("utf-8", "backslashreplace")


def purge(tmp_path, home, tag):
    """purge.yml on localhost over home; (ansible-playbook's output, the run's report dir)."""
    tmp_path.mkdir()
    report = tmp_path / "report"
    extra = {"residue_targets": ["labtest_" + tag],
             "residue_profiles": {"labtest_" + tag: {"paths": ["{user_cache}/labtest-" + tag]}},
             "residue_homes": [os.fsdecode(home)], "residue_report_dir": str(report)}
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("good ansible_connection=local ansible_python_interpreter=%s\n" % VENV_PYTHON)
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), os.path.join(REPO, "playbooks", "purge.yml"),
                           "-e", json.dumps(extra)], env=ansible_env(), capture_output=True, timeout=600, check=False)
    output = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    return proc.returncode, output, os.path.realpath(str(report / "latest"))


@pytest.fixture
def hostile_purges(tmp_path):
    """Two purges of the same hostile home: the first stops a holder of a deleted residue file (verify runs),
    the second fails on an immutable file (the host ends in sweep)."""
    tag = uuid.uuid4().hex[:8]
    home = os.fsencode(str(tmp_path)) + b"/" + HOME.encode("utf-8")
    residue = home + b"/.cache/labtest-" + tag.encode()
    stuck, held = residue + b"/sub/" + STUCK, residue + b"/" + HELD
    exe = os.fsencode(str(tmp_path)) + b"/" + HOLDER_NAME
    os.symlink(os.fsencode(os.path.realpath(sys.executable)), exe)
    os.makedirs(residue + b"/sub")
    for path in (residue + b"/sub/weights.bin", held):
        with open(path, "wb") as f:
            f.write(b"x" * 50000)
    holder = subprocess.Popen([exe, b"-c", HOLDER.encode(), held], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    runs = []
    try:
        assert holder.stdout.readline().strip() == b"ready"
        runs.append(purge(tmp_path / "first", home, tag))
        os.makedirs(residue + b"/sub")
        for path in (residue + b"/sub/weights.bin", stuck):
            with open(path, "wb") as f:
                f.write(b"x" * 5000)
        subprocess.run([b"chattr", b"+i", stuck], check=True)
        runs.append(purge(tmp_path / "second", home, tag))
        yield dict(runs=runs, residue=module_text(residue), stuck=module_text(stuck), held=module_text(held),
                   holder=holder)
    finally:
        if os.path.lexists(stuck):
            subprocess.run([b"chattr", b"-i", stuck], check=False)
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def test_hostile_names_reach_every_page_escaped_whole_and_on_one_line(hostile_purges):
    (rc1, out1, first), (rc2, out2, second) = hostile_purges["runs"]
    assert rc1 == 0, out1[-3000:]
    assert rc2 != 0, out2[-3000:]  # the immutable file fails the host, after the report is written
    records = []
    for run_dir in (first, second):
        with open(os.path.join(run_dir, "hosts", "good.json")) as f:
            records.append(json.load(f))
    # the records hold the names exactly as the modules returned them
    assert records[0]["status"] == "ok" and records[1]["status"] == "failed"
    assert hostile_purges["residue"] in [i["path"] for i in records[0]["removed"]], records[0]["removed"]
    assert hostile_purges["held"] in [h["path"] for h in records[0]["held_open"]], records[0]["held_open"]
    holder = module_text(HOLDER_NAME)[:15]  # the kernel keeps 15 bytes of a process name
    assert holder in [s["name"] for s in records[0]["stopped"]], records[0]["stopped"]
    assert hostile_purges["holder"].wait(10) is not None
    assert hostile_purges["stuck"] in [f["item"] for f in records[1]["failed"]], records[1]["failed"]
    # run -> (names its pages show, names its console summary shows: removed, held back, failed)
    shown = {first: ([hostile_purges["residue"], hostile_purges["held"], holder], [hostile_purges["residue"]]),
             second: ([hostile_purges["residue"], hostile_purges["stuck"]],
                      [hostile_purges["residue"], hostile_purges["stuck"]])}
    for run_dir, output in ((first, out1), (second, out2)):
        on_pages, in_summary = shown[run_dir]
        # the pages as a reader sees them: every name whole, escaped, and no element a name brought in
        for page, (seen, tags) in page_texts(run_dir).items():
            assert set(tags) <= TEMPLATE_TAGS, (page, set(tags) - TEMPLATE_TAGS)
            for name in on_pages:
                assert text(name) in seen, (page, text(name))
        # one line per item in the page sources and the console summary, no raw control character anywhere
        written = {"fleet.md": (on_pages, lambda name: text(name).replace("|", "\\|")),  # a pipe in a table cell
                   "fleet.html": (on_pages, lambda name: str(escape(text(name)))),
                   "summary.txt": (in_summary, text)}
        for page, (names, spelt) in written.items():
            with open(os.path.join(run_dir, page)) as f:
                source = f.read()
            assert not re.search(u"[\x00-\x09\x0b-\x1f\x7f\u202e]", source), page
            for name in names:
                assert [line for line in source.splitlines() if spelt(name) in line], (page, spelt(name))
        # what the report role printed (its Summary task); a module's own failure message is Ansible's to print
        printed = output[output.index("TASK [residue.purge.report : Summary]"):]
        printed = printed[:printed.index("TASK [", 10)]
        assert not re.search(u"[\x00-\x09\x0b-\x1f\x7f\u202e]", printed), printed
        assert text(in_summary[-1])[:40].replace("\\", "\\\\") in printed, printed
    with open(os.path.join(second, "summary.txt")) as f:
        lines = f.read().splitlines()
    for name, prefix in ((hostile_purges["residue"], "    - path "), (hostile_purges["stuck"], "  FAILED good [sweep] ")):
        assert [line for line in lines if line.startswith(prefix + text(name))], (prefix, text(name), lines)
