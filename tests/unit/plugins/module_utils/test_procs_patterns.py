# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Process patterns are precise: a profile matches the program (executable, argv[0], the module or script an
interpreter runs), never a process that merely names the target in an argument; a pattern that would match
every process is refused before anything is signalled.

Real processes with test-unique names; only PIDs started here are killed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.residue.purge.plugins.module_utils import _procs, _profiles

PYTHON = sys.executable
NODE = shutil.which("node") or shutil.which("nodejs")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in %ss" % timeout)


class Lab(object):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rp-patterns-")
        os.chmod(self.dir, 0o755)
        self.program = "rp-test-%s-agent" % uuid.uuid4().hex[:8]   # the profile's program name
        self.module = self.program.replace("-", "_")               # the same program as a Python package
        self.popens = []

    def path(self, *parts):
        path = os.path.join(self.dir, *parts)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        return path

    def write(self, text, *parts):
        path = self.path(*parts)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, argv, **kwargs):
        popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, **kwargs)
        self.popens.append(popen)
        return popen

    def cleanup(self):
        for popen in self.popens:
            try:
                for child in psutil.Process(popen.pid).children(recursive=True):
                    child.kill()
            except psutil.Error:
                pass
            if popen.poll() is None:
                popen.kill()
            popen.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def lab():
    lab = Lab()
    yield lab
    lab.cleanup()


def _running(popen, argv_tail):
    """The process of popen (or its child) whose argv ends with argv_tail, once it runs."""
    def find():
        try:
            procs = [psutil.Process(popen.pid)] + psutil.Process(popen.pid).children(recursive=True)
            return [p.pid for p in procs if p.cmdline()[-len(argv_tail):] == argv_tail]
        except psutil.Error:
            return []
    wait_for(find)
    return find()[0]


def test_builtin_profiles_match_the_program_not_arguments():
    profiles = _profiles.load_profiles()
    assert profiles["open_autoglm"]["processes"]["names"] == ["open-autoglm"]
    assert all(p.startswith("^") for p in profiles["open_autoglm"]["processes"]["cmdline"])  # argv[0] anchored
    assert profiles["ollama"]["processes"]["cmdline"] == []
    selection = _procs.ProcessSelection({"open_autoglm": profiles["open_autoglm"]})
    for argv, exe, want in (
            (["python3", "-m", "open_autoglm"], "/usr/bin/python3", True),
            (["/usr/bin/python3", "/srv/open_autoglm/main.py"], "/usr/bin/python3", True),
            (["node", "/usr/lib/node_modules/open-autoglm/cli.js"], "/usr/bin/node", True),
            (["/opt/bin/open-autoglm", "serve"], "/opt/bin/open-autoglm", True),
            (["tail", "-f", "/var/log/open-autoglm"], "/usr/bin/tail", False),
            (["vim", "/root/.cache/open-autoglm/notes.txt"], "/usr/bin/vim", False),
            (["grep", "open-autoglm"], "/usr/bin/grep", False),
            (["runuser", "-u", "a", "--", "tail", "-f", "/var/log/open-autoglm"], "/usr/sbin/runuser", False),
            (["sudo", "python3", "-m", "open_autoglm"], "/usr/bin/sudo", False)):
        entry = {"name": os.path.basename(exe), "cmdline": argv, "exe": exe}
        assert (selection.targets_of(entry) == ["open_autoglm"]) is want, argv


def test_programs_match_and_bystanders_naming_the_target_do_not(lab):
    """Targets: the executable, `python -m pkg`, `python .../pkg/main.py`, `node .../<program>`. Bystanders:
    tail -f of a log named after the program, vim on a file in its cache, grep for its name, and a runuser
    parent of such a tail. Only the targets are matched, by the profile's plain program name."""
    sleep_forever = "import time\ntime.sleep(600)\n"
    lab.write(sleep_forever, "site", lab.module, "__main__.py")
    lab.write("", "site", lab.module, "__init__.py")
    main_py = lab.write(sleep_forever, "app", lab.module, "main.py")
    node_script = lab.write("setTimeout(function () {}, 600000);\n", "node", lab.program)
    exe = lab.path("bin", lab.program)
    os.symlink(shutil.which("sleep"), exe)
    log = lab.write("line\n", "log", lab.program)
    notes = lab.write("notes\n", "cache", lab.program, "notes.txt")

    env = dict(os.environ, PYTHONPATH=lab.path("site"))
    targets = {
        _running(lab.start([PYTHON, "-u", "-m", lab.module], env=env), ["-m", lab.module]),
        _running(lab.start([PYTHON, main_py]), [main_py]),
        _running(lab.start([exe, "600"]), [exe, "600"]),
    }
    if NODE:
        targets.add(_running(lab.start([NODE, node_script]), [node_script]))
    bystanders = {
        _running(lab.start(["tail", "-f", log]), ["tail", "-f", log]),
        _running(lab.start(["vim", "-n", "-es", notes]), [notes]),
        _running(lab.start(["grep", lab.program]), ["grep", lab.program]),
    }
    runuser = lab.start(["runuser", "-u", "nobody", "--", "tail", "-f", log])
    bystanders.add(runuser.pid)
    bystanders.add(_running(runuser, ["tail", "-f", log]))
    assert all(psutil.Process(pid).is_running() for pid in bystanders)

    found = set(p.pid for p in _procs.find_processes(names=[lab.program]))
    assert found == targets
    assert not found & bystanders
    # the same selection through a profile, as reap builds it
    selection = _procs.ProcessSelection({"rp": {"processes": {"names": [lab.program], "cmdline": []}}})
    assert set(p.pid for p in selection.find()) == targets
    assert not NODE or len(targets) == 4


# ---------------------------------------------------------------------------------------------- hypothesis

_VIEWERS = ["tail", "vim", "vi", "less", "more", "cat", "grep", "rg", "sudo", "runuser", "su", "nano", "journalctl",
            "watch", "strace", "gdb", "env"]
_TARGET = "open-autoglm"
_ARG = st.one_of(
    st.sampled_from([_TARGET, "open_autoglm", "-m", "-f", "--", "/var/log/" + _TARGET, "~/.cache/%s/notes.txt" % _TARGET,
                     "/opt/%s/main.py" % "open_autoglm", "/usr/lib/node_modules/%s/cli.js" % _TARGET, "-c", "-u",
                     "python3", "node", "/usr/bin/" + _TARGET]),
    st.text(min_size=0, max_size=12))


@settings(max_examples=400, deadline=None)
@given(viewer=st.sampled_from(_VIEWERS), prefix=st.sampled_from(["", "/usr/bin/", "/bin/", "/usr/sbin/"]),
       args=st.lists(_ARG, max_size=8))
def test_a_program_that_only_names_the_target_in_its_arguments_is_never_matched(viewer, prefix, args):
    argv = [prefix + viewer] + args
    assert not _procs.match_name({_TARGET}, viewer, argv, "/usr/bin/" + viewer)
    # nor by the built-in profile (its names and its argv[0]-anchored patterns)
    assert _BUILTIN.targets_of({"name": viewer, "cmdline": argv, "exe": "/usr/bin/" + viewer}) == []


_BUILTIN = _procs.ProcessSelection({"open_autoglm": _profiles.load_profiles()["open_autoglm"]})
_PY_OPTION = st.sampled_from(["-u", "-B", "-E", "-s", "-O", "-OO", "-I", "-q", "-W", "-X"])


@settings(max_examples=300, deadline=None)
@given(interpreter=st.sampled_from(["python", "python3", "python3.12", "/usr/bin/python3", "pypy3"]),
       options=st.lists(_PY_OPTION, max_size=4), submodule=st.sampled_from(["", ".server", ".cli.main"]),
       args=st.lists(_ARG, max_size=4))
def test_python_running_the_module_is_matched_whatever_its_options(interpreter, options, submodule, args):
    argv = [interpreter]
    for option in options:
        argv.extend([option, "ignore"] if option in ("-W", "-X") else [option])
    argv += ["-m", "open_autoglm" + submodule] + args
    assert _procs.match_name({_TARGET}, "python3", argv, "/usr/bin/python3.12")


@settings(max_examples=300, deadline=None)
@given(code=st.text(max_size=30), args=st.lists(_ARG, max_size=4))
def test_python_given_code_inline_is_not_the_program(code, args):
    argv = ["python3", "-c", code] + args
    assert not _procs.match_name({_TARGET}, "python3", argv, "/usr/bin/python3")


_EMPTY_MATCHING = st.one_of(
    st.sampled_from([".*", "^", "$", "|x", "x|", "(?:)", "x?", "x*", "(open-autoglm)?", "^|$",
                     "(?=)", "[a-z]*", ".{0,3}", "(?:open)?|y"]),
    st.builds(lambda t, w: w % re.escape(t), st.text(min_size=1, max_size=10),
              st.sampled_from(["(?:%s)?", "(?:%s)*", "%s|", "|%s", "(?:%s){0,2}", ".*(?:%s)?", "^(?:%s)?"])))
_EVERY_LINE = st.sampled_from([".", "\\S", "\\w", "[^\\n]", "[\\s\\S]", ".+", "\\S+", "(.)", "[^\\x00]"])


@settings(max_examples=300, deadline=None)
@given(pattern=_EMPTY_MATCHING)
def test_a_pattern_that_matches_the_empty_string_is_refused(pattern):
    with pytest.raises(ValueError, match="matches the empty string"):
        _procs.compile_patterns([pattern], "cmdline")
    with pytest.raises(_profiles.ProfileError, match="matches the empty string"):
        _profiles.load_profiles({"x": {"processes": {"cmdline": [pattern]}}})


@settings(max_examples=50, deadline=None)
@given(pattern=_EVERY_LINE)
def test_a_pattern_found_in_every_command_line_is_refused(pattern):
    with pytest.raises(ValueError, match="matches every command line"):
        _procs.compile_patterns([pattern], "cmdline")


@settings(max_examples=400, deadline=None)
@given(text=st.text(min_size=1, max_size=30))
def test_any_literal_pattern_is_accepted(text):
    """No character is common to all the unrelated command lines, so a literal never looks unselective."""
    assert [r.pattern for r in _procs.compile_patterns([re.escape(text)], "cmdline")] == [re.escape(text)]


def test_the_refusal_names_the_option_and_happens_before_any_signal(lab):
    victim = lab.start([shutil.which("sleep"), "600"])
    for params, where in (({"cmdline": [".*"]}, "cmdline"),
                          ({"targets": ["x"], "profiles": {"x": {"processes": {"cmdline": ["^"]}}}},
                           "processes.cmdline"),
                          ({"targets": ["x"], "profiles": {"x": {"cron": ["|x"]}}}, "cron")):
        with pytest.raises(ValueError, match=re.escape(where)):
            _procs.run(dict({"signal": "TERM", "grace": 1, "kill_after_grace": True, "tree": True,
                             "respawn_window": 1, "users": "all"}, **params))
    assert victim.poll() is None
