# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real module results for the report's contract tests, and the script that stores them as fixtures.

Each scenario builds a small world on this machine (a sandbox home holding a made-up target's residue: cache and
config dirs, a Hugging Face cache, a venv with the target's package, an XDG autostart entry, a running daemon and
a process holding a residue file open) and runs the modules of a purge over it, in the roles' order, through
conftest.run_tasks (real ansible-playbook):

    clean    purge: everything goes (with a backup), then restore.yml's unarchive puts the files back
    partial  purge with traps: immutable files (remove, hf_cache, autostart, pip_remove, model_budget,
             ollama_models, modelscope_models fail on them), a download lock (hf_cache holds the repo back), the
             daemon reaped by an unprivileged user (survives), a deleted file held open by this very process
             (open_deleted spares it), broken HF cache entries (problems), model layers held open by a running
             process and a ModelScope download in progress (model_budget, ollama_models, modelscope_models hold
             them back)
    preview  the clean world in check mode (preflight to the first verify step, as purge.yml --check runs them)

The home also holds model stores (Ollama, ModelScope, torch hub next to its HF cache): model_budget runs in the
sweep with a host budget (as prune.yml does) and removes the least recently used; two more stores outside the home
are given to ollama_models and modelscope_models by path (registered as sweep_ollama / sweep_modelscope, which the
report carries when a play runs them).  In partial, check_vars also runs on a variable that is wrong (its message
is what the preflight rescue records).

    PYTHONPATH=.build/collections .venv/bin/python tests/integration/report_scenarios.py

rewrites tests/unit/plugins/filter/fixtures/module_results/<scenario>.json.  test_report_contract.py (integration)
checks that the stored results still have the shape the modules return today; the unit contract test feeds them
through the report filter.  Everything started here is killed by PID, everything created is removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from conftest import REPO, run_tasks  # noqa: E402
from wheels import build_wheel  # noqa: E402

sys.path.insert(0, os.path.join(REPO, ".build", "collections"))
from ansible_collections.residue.purge.tests.unit.support import hfgen, ollamagen  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "unit", "plugins", "filter", "fixtures", "module_results")
SCENARIOS = ("clean", "partial", "preview")
SYSTEM_PYTHON = "/usr/bin/python3"
# what the fixtures say instead of this run's random names (stable files when they are regenerated)
STABLE_ROOT, STABLE_TAG, STABLE_USER = "/tmp/rp-contract", "tag000", "rpcuser"

HOLDER = ("import os, sys, time\n"
          "fds = [os.open(path, os.O_RDONLY) for path in sys.argv[1:]]\n"
          "print('ready', flush=True)\n"
          "time.sleep(600)\n")


def _chattr(flag, path):
    subprocess.run(["chattr", flag, path], check=True, capture_output=True)


class World(object):
    """The sandbox of one scenario; cleanup() undoes everything (immutable flags, processes, user, files)."""

    def __init__(self, traps):
        self.traps = traps
        self.root = tempfile.mkdtemp(prefix="rp-contract-")
        os.chmod(self.root, 0o755)
        self.tag = uuid.uuid4().hex[:6]
        self.target = "rpc_" + self.tag
        self.name = "rpc-" + self.tag
        self.home = os.path.join(self.root, "home", "owner")
        self.cache = os.path.join(self.home, ".cache", self.name)
        self.config = os.path.join(self.home, ".config", self.name)
        self.hub = os.path.join(self.home, ".cache", "huggingface", "hub")
        self.venv = os.path.join(self.home, "venvs", "app")
        self.backups = os.path.join(self.root, "backups")
        self.package = self.name + "-app"
        self.ollama = os.path.join(self.home, ".ollama", "models")  # model_budget finds these in the home
        self.modelscope = os.path.join(self.home, ".cache", "modelscope", "hub")
        self.torch = os.path.join(self.home, ".cache", "torch", "hub")
        self.ollama_dir = os.path.join(self.root, "stores", "ollama")  # ollama_models / modelscope_models: by path
        self.modelscope_dir = os.path.join(self.root, "stores", "modelscope")
        self.immutable, self.popens, self.fds = [], [], []
        self.user = None

    # ------------------------------------------------------------ building
    def build(self):
        for path in (self.cache + "/models", self.config, os.path.join(self.home, ".config", "autostart")):
            os.makedirs(path)
        self._write(self.cache + "/models/weights.bin", b"w" * 300000)
        self._write(self.cache + "/held.bin", b"h" * 50000)
        self._write(self.config + "/config.json", b'{"model": "x"}\n')
        self._write(os.path.join(self.home, ".config", "autostart", self.name + ".desktop"),
                    b"[Desktop Entry]\nExec=%s\n" % self.name.encode())
        self._hf_cache()
        self._venv()
        self.daemon = self._start([self._link(self.name + "-d", shutil.which("sleep")), "600"])
        self.holder = self._start([self._link("rph-" + self.tag, sys.executable), "-c", HOLDER, self.cache + "/held.bin"],
                                  stdout=subprocess.PIPE)
        assert self.holder.stdout.readline().strip() == b"ready"
        self._model_stores()
        if self.traps:
            self._traps()
        return self

    # least recently used a year ago (first to go under a budget), or used just now
    OLD = 365 * 86400

    def _ollama_model(self, store, name, weights, old):
        stamp = time.time() - (self.OLD if old else 0)
        path = ollamagen.model(store, name, [("cfg-" + name).encode(), weights], mtime=stamp)
        return os.path.join(store, "blobs", "sha256-" + hashlib.sha256(weights).hexdigest()), path

    def _model_dir(self, path, files, old):
        os.makedirs(path)
        for name, size in files:
            self._write(os.path.join(path, name), os.path.basename(path).encode()[:1] * size)
        self._age(path, old)
        return path

    def _age(self, path, old):
        stamp = time.time() - (self.OLD if old else 0)
        for dirpath, _dirs, files in os.walk(path):
            for name in files:
                os.utime(os.path.join(dirpath, name), (stamp, stamp))
            os.utime(dirpath, (stamp, stamp))

    def _model_stores(self):
        """A year-old model in each of the home's stores (a 300K budget removes them and keeps the fresh ones),
        and the stores ollama_models and modelscope_models are given by path."""
        self._ollama_model(self.ollama, self.name + "-old:1b", b"O" * 400000, old=True)
        self._ollama_model(self.ollama, self.name + "-keep:1b", b"K" * 60000, old=False)
        self._model_dir(os.path.join(self.modelscope, "models", self.name, "old"), [("model.bin", 400000)], old=True)
        self._model_dir(os.path.join(self.torch, "checkpoints"), [], old=True)
        self._write(os.path.join(self.torch, "checkpoints", "old.pth"), b"t" * 400000)
        self._age(os.path.join(self.torch, "checkpoints"), old=True)
        shared = b"S" * 30000  # a layer both use: removing model a leaves it to b
        ollamagen.model(self.ollama_dir, self.name + "-a:1b", [b"cfg-a", shared, b"A" * 20000])
        ollamagen.model(self.ollama_dir, "other:1b", [b"cfg-b", shared])
        ollamagen.layer(self.ollama_dir, b"orphan" * 1000, mtime=time.time() - self.OLD)  # no manifest: swept
        self._model_dir(os.path.join(self.modelscope_dir, "models", self.name, "a"), [("model.bin", 20000)], old=False)
        self._model_dir(os.path.join(self.modelscope_dir, "models", "other", "keep"), [("model.bin", 1000)], old=False)

    def _traps(self):
        stuck = self.cache + "/models/stuck.bin"
        self._write(stuck, b"s" * 4096)
        self._immutable(stuck)
        entry = os.path.join(self.home, ".config", "autostart", self.name + "-stuck.desktop")
        self._write(entry, b"[Desktop Entry]\nExec=x\n")
        self._immutable(entry)
        # pip can neither move the package dir aside nor empty it: the uninstall fails and is rolled back
        self._immutable(os.path.join(self._site_packages(), self.package.replace("-", "_")))
        # a residue file this process holds open: open_deleted finds it deleted and spares its own ancestor
        mine = self.config + "/held-by-the-runner.bin"
        self._write(mine, b"r" * 8192)
        self.fds.append(os.open(mine, os.O_RDONLY))
        self.user = "rpc" + uuid.uuid4().hex[:8]
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", self.user], check=True)
        self._model_traps()

    def _model_traps(self):
        """Layers a running process holds open (held back), immutable models (failures), a download in progress."""
        held, _manifest = self._ollama_model(self.ollama, self.name + "-held:1b", b"H" * 400000, old=True)
        self._model_dir(os.path.join(self.modelscope, "models", self.name, "stuck"), [("model.bin", 400000)],
                        old=True)
        self._immutable(os.path.join(self.modelscope, "models", self.name, "stuck", "model.bin"))
        self._write(os.path.join(self.torch, "checkpoints", "stuck.pth"), b"u" * 400000)
        self._age(os.path.join(self.torch, "checkpoints"), old=True)
        self._immutable(os.path.join(self.torch, "checkpoints", "stuck.pth"))
        in_use, _manifest = self._ollama_model(self.ollama_dir, self.name + "-held:1b", b"U" * 20000, old=False)
        _layer, stuck = self._ollama_model(self.ollama_dir, self.name + "-stuck:1b", b"I" * 20000, old=False)
        self._immutable(stuck)  # its manifest cannot be unlinked
        self._model_dir(os.path.join(self.modelscope_dir, "models", self.name, "stuck"), [("model.bin", 20000)],
                        old=False)
        self._immutable(os.path.join(self.modelscope_dir, "models", self.name, "stuck", "model.bin"))
        self._model_dir(os.path.join(self.modelscope_dir, "models", self.name, "dl"), [("config.json", 100)], old=False)
        self._model_dir(os.path.join(self.modelscope_dir, "._____temp", self.name, "dl"), [("model.bin", 5000)],
                        old=False)
        self.model_holder = self._start([self._link("rpm-" + self.tag, sys.executable), "-c", HOLDER, held, in_use],
                                        stdout=subprocess.PIPE)
        assert self.model_holder.stdout.readline().strip() == b"ready"

    def _hf_cache(self):
        hfgen.add_repo(self.hub, self.name + "/model-a", revisions=2)
        keep = hfgen.add_repo(self.hub, "other-org/keep-me", revisions=1)
        if not self.traps:
            return
        locked = hfgen.add_repo(self.hub, self.name + "/model-locked", revisions=1)
        self.fds.append(hfgen.hold_lock(hfgen.lock_path(self.hub, locked, "e" * 64)))
        stuck = hfgen.add_repo(self.hub, self.name + "/model-stuck", revisions=1)
        blobs = os.path.join(stuck.path, "blobs")
        self._immutable(os.path.join(blobs, sorted(os.listdir(blobs))[0]))
        hfgen.add_missing_ref(keep)  # a broken entry: discover and hf_cache report it as a problem

    def _venv(self):
        wheels = os.path.join(self.root, "wheels")
        os.makedirs(wheels)
        build_wheel(wheels, self.package, "1.0", requires=[self.name + "-core"])
        build_wheel(wheels, self.name + "-core", "1.0")
        # a copy of one venv made per process (`python -m venv` with its pip costs seconds of CPU; its copy does not)
        os.makedirs(os.path.dirname(self.venv))
        subprocess.run(["cp", "-a", template_venv(), self.venv], check=True)
        subprocess.run([os.path.join(self.venv, "bin", "python"), "-m", "pip", "install", "-q", "--no-index",
                        "--find-links", wheels, "--disable-pip-version-check", self.package],
                       check=True, capture_output=True, cwd="/")

    def _site_packages(self):
        lib = os.path.join(self.venv, "lib")
        return os.path.join(lib, os.listdir(lib)[0], "site-packages")

    def _write(self, path, data):
        with open(path, "wb") as f:
            f.write(data)

    def _immutable(self, path):
        _chattr("+i", path)
        self.immutable.append(path)

    def _link(self, name, target):
        path = os.path.join(self.root, name)
        os.symlink(target, path)
        return path

    def _start(self, argv, **kwargs):
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        self.popens.append(popen)
        return popen

    # ------------------------------------------------------------ the purge
    def steps(self, check_mode):
        """(slot, step) in the roles' order; args as the roles pass them."""
        scope = {"targets": [self.target], "homes": [self.home],
                 "profiles": {self.target: {"paths": ["{user_cache}/" + self.name, "{user_config}/" + self.name],
                                            "processes": {"names": [self.name + "-d"]},
                                            "services": {"xdg": [self.name + "*.desktop"]},
                                            "hf_repos": [self.name + "/*"], "pip": [self.package]}}}
        reap = {"module": "reap", "args": dict(scope, grace=2)}
        if self.user:  # an unprivileged run cannot stop root's daemon: it survives
            reap.update(become_user=self.user, interpreter=SYSTEM_PYTHON)
        steps = [
            ("found", {"module": "discover", "args": scope}),
            ("autostart", {"module": "autostart", "args": scope}),
            ("reaped", reap),
            ("hf", {"module": "hf_cache", "args": dict(scope, discover=True,
                                                       cache_dirs="{{ R_found.hf_caches | map(attribute='path') | list }}")}),
            # one budget for the home's model stores, as prune.yml runs it (sweep_budget_scope host)
            ("budget", {"module": "model_budget", "args": {"max_size": "300K", "homes": [self.home],
                                                           "scan_processes": False}}),
            ("ollama", {"module": "ollama_models", "args": {"models_dirs": [self.ollama_dir],
                                                            "models": [self.name + "-*"], "orphans": True,
                                                            "scan_processes": False}}),
            ("modelscope", {"module": "modelscope_models", "args": {"cache_dirs": [self.modelscope_dir],
                                                                    "models": [self.name + "/*"],
                                                                    "scan_processes": False}}),
            ("removed", {"module": "remove", "args": dict(scope, backup=self.backups)}),
            ("pip", {"module": "pip_remove", "args": scope}),
            ("pinned", {"module": "open_deleted", "args": {"under": [self.cache, self.config], "action": "terminate",
                                                           "grace": 2}}),
        ]
        if self.traps:  # a wrong variable: check_vars names it (the preflight rescue records its message)
            steps.insert(0, ("vars", {"module": "check_vars", "args": {"variables": {
                "residue_targets": [self.target], "residue_profiles": scope["profiles"],
                "residue_homes": [self.home, os.path.join(self.root, "home", "gone")]}}}))
        if not check_mode:
            steps.append(("after", {"module": "discover", "args": dict(
                scope, extra_hf_caches="{{ R_found.hf_caches | map(attribute='path') | list }}")}))
        if not check_mode and not self.traps:
            steps.append(("restored", {"module": "ansible.builtin.unarchive", "args": {
                "src": "{{ R_removed.backup.path }}", "dest": "/", "remote_src": True, "list_files": True}}))
        # R_<slot>: the result registered by that slot's step (run_tasks registers step i as r<i>)
        index = dict((slot, "r%d" % i) for i, (slot, _step) in enumerate(steps))
        text = re.sub(r"\bR_([a-z]+)\b", lambda m: index[m.group(1)], json.dumps(steps))
        return [tuple(pair) for pair in json.loads(text)]

    # ------------------------------------------------------------ undoing it
    def cleanup(self):
        for path in self.immutable:
            subprocess.run(["chattr", "-i", path], capture_output=True, check=False)
        subprocess.run(["chattr", "-R", "-i", self.root], capture_output=True, check=False)  # whatever moved
        for fd in self.fds:
            os.close(fd)
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.wait()
        if self.user:
            subprocess.run(["userdel", self.user], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", self.root], check=False)

    def stable(self, value):
        """This run's random names replaced by fixed ones, in every string of value."""
        text = json.dumps(value).replace(self.root, STABLE_ROOT).replace(self.root.lstrip("/"), STABLE_ROOT.lstrip("/"))
        text = text.replace(self.tag, STABLE_TAG)
        if self.user:
            text = text.replace(self.user, STABLE_USER)
        return json.loads(text)


_TEMPLATE = {}
_TEMPLATE_LOCK = threading.Lock()


def template_venv():
    """A venv with pip and nothing else, made once per process (removed at exit): each world's venv is its copy.
    pyvenv.cfg's home is the same system Python, and pip runs as `python -m pip`, so the copy works where it is."""
    with _TEMPLATE_LOCK:
        if "path" not in _TEMPLATE:
            root = tempfile.mkdtemp(prefix="rp-contract-venv-")
            atexit.register(shutil.rmtree, root, True)
            path = os.path.join(root, "venv")
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", path], check=True, capture_output=True)
            _TEMPLATE["path"] = path
        return _TEMPLATE["path"]


def capture_all(scenarios=SCENARIOS):
    """capture() of each scenario, all at the same time (each world has its own names, processes and user, and
    its modules act on it alone): {scenario: fixture document}."""
    template_venv()  # made once, before the worlds copy it
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
        futures = dict((scenario, pool.submit(capture, scenario)) for scenario in scenarios)
        return dict((scenario, future.result()) for scenario, future in futures.items())


def capture(scenario):
    """Build the scenario's world, run its modules, tear it down: the fixture document (stable names)."""
    world = World(traps=scenario == "partial")
    try:
        world.build()
        check_mode = scenario == "preview"
        steps = world.steps(check_mode)
        results = run_tasks([step for _slot, step in steps], check=check_mode)
        recorded = []
        for (slot, step), result in zip(steps, results):
            for key in ("_stdout", "_stderr", "invocation"):
                result.pop(key, None)
            recorded.append({"slot": slot, "module": step["module"].rpartition(".")[2],
                             "become_user": step.get("become_user"), "result": result})
        return world.stable({"scenario": scenario, "check_mode": check_mode, "target": world.target,
                             "steps": recorded})
    finally:
        world.cleanup()


def key_paths(value, prefix=""):
    """The shape of a result: every key path (list items merged as [], path-keyed maps as {path})."""
    out = set()
    if isinstance(value, dict):
        for key, item in value.items():
            name = "{path}" if key.startswith("/") else key
            out.add(prefix + name)
            out |= key_paths(item, prefix + name + ".")
    elif isinstance(value, list):
        for item in value:
            out |= key_paths(item, prefix + "[].")
    return out


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: the scenarios create a user, immutable files and processes of root")
    os.makedirs(FIXTURES, exist_ok=True)
    for scenario, doc in capture_all(tuple(sys.argv[1:]) or SCENARIOS).items():
        path = os.path.join(FIXTURES, scenario + ".json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        print("%s: %d results" % (path, len(doc["steps"])))


if __name__ == "__main__":
    main()
