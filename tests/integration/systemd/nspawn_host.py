# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real systemd host for tests: Debian bookworm booted with systemd-nspawn in its own network namespace,
reached by Ansible over SSH (ProxyCommand through the namespace, as in shared/lab/README.md).

The root filesystem is built once by build_rootfs.sh and cached; each boot runs on a throwaway overlay
(--volatile=overlay), so nothing a test does survives it. SystemdHost is a context manager: the container and
its namespace are torn down on exit, also when the test fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOTFS = os.environ.get("RESIDUE_SYSTEMD_ROOTFS", "/var/cache/residue-purge/systemd-bookworm")


class SystemdHost(object):
    def __init__(self, collections, rootfs=ROOTFS):
        self.collections = collections
        self.rootfs = rootfs
        self.name = "rp-sd-" + uuid.uuid4().hex[:8]
        self.tmp = None
        self.proc = None
        self.netns = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        for tool in ("systemd-nspawn", "debootstrap", "socat", "ip", "ssh"):
            if not shutil.which(tool):
                raise RuntimeError("%s is missing: run `make bootstrap` (tools/bootstrap.sh installs it)" % tool)
        build = subprocess.run([os.path.join(HERE, "build_rootfs.sh"), self.rootfs], capture_output=True,
                               text=True, check=False)
        if build.returncode != 0:
            raise RuntimeError("building the systemd root filesystem failed (see %s.log): %s" % (
                self.rootfs, build.stderr.strip()))
        self.tmp = tempfile.mkdtemp(prefix=self.name + "-")
        self.key = os.path.join(self.tmp, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.netns = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.console = open(os.path.join(self.tmp, "console.log"), "wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", self.rootfs, "--volatile=overlay", "--boot", "--register=no",
             "--keep-unit", "--machine=" + self.name, "--network-namespace-path=/run/netns/" + self.name,
             "--bind-ro=%s.pub:/root/.ssh/authorized_keys" % self.key],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("systemd-nspawn exited with %s: %s" % (self.proc.returncode, self.console_text()))
            result = self.ssh("systemctl is-system-running", check=False, timeout=10)
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise RuntimeError("the systemd host did not come up (state %r): %s" % (state, self.console_text()))

    def console_text(self):
        try:
            with open(os.path.join(self.tmp, "console.log"), "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn powers the container off cleanly
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.name], check=False)
            self.netns = False
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ access

    def ssh_args(self):
        return ["-o", "ProxyCommand=ip netns exec %s socat - TCP:127.0.0.1:22" % self.name,
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5"]

    def ssh(self, command, check=True, timeout=60):
        result = subprocess.run(["ssh", "-i", self.key] + self.ssh_args() + ["root@" + self.name, command],
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError("on %s: %s -> rc %d\n%s%s" % (self.name, command, result.returncode,
                                                               result.stdout, result.stderr))
        return result

    def run_module(self, module, args, check=False, diff=False):
        """Run residue.purge.<module> on the container through ansible-playbook over SSH; return its result."""
        out = os.path.join(self.tmp, "result-%s.json" % uuid.uuid4().hex[:6])
        inventory = os.path.join(self.tmp, "inventory.yml")
        with open(inventory, "w") as f:
            yaml.safe_dump({"all": {"hosts": {self.name: {
                "ansible_host": self.name, "ansible_user": "root", "ansible_ssh_private_key_file": self.key,
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_common_args": " ".join("'%s'" % a if " " in a else a for a in self.ssh_args()),
            }}}}, f)
        play = [{"name": "systemd host", "hosts": "all", "gather_facts": False, "tasks": [
            {"name": "module under test", "residue.purge." + module: args, "register": "r", "ignore_errors": True},
            {"name": "save result", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": out},
             "delegate_to": "localhost", "check_mode": False, "diff": False,
             "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        ]}]
        playbook = os.path.join(self.tmp, "play.yml")
        with open(playbook, "w") as f:
            yaml.safe_dump(play, f)
        cmd = ["ansible-playbook", "-i", inventory, playbook] + (["--check"] if check else []) + (
            ["--diff"] if diff else [])
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_RETRY_FILES_ENABLED="0",
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        if not os.path.exists(out):
            raise AssertionError("ansible-playbook did not run the task:\n" + proc.stdout + proc.stderr)
        with open(out) as f:
            result = json.load(f)
        result["_stdout"] = proc.stdout
        return result
