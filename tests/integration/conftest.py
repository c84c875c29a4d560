"""Run residue.purge modules through real Ansible (ansible-playbook, local connection).

`run_module("discover", {...})` returns the registered task result as a dict, plus
`_stdout` (what ansible-playbook printed, for diff/check-mode assertions).
"""
import json
import os
import subprocess
import sys
import tempfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
VENV_PYTHON = sys.executable
SYSTEM_PYTHON = "/usr/bin/python3"


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        PATH=os.path.dirname(VENV_PYTHON) + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra or {})
    return env


def run_module(module, args, check=False, diff=False, interpreter=None, env=None, timeout=600, become_user=None):
    """Run residue.purge.<module> with args on localhost; return its registered result."""
    with tempfile.TemporaryDirectory(prefix="residue-it-") as tmp:
        out = os.path.join(tmp, "result.json")
        task = {"name": "module under test", "residue.purge." + module: args, "register": "r", "ignore_errors": True}
        if become_user:
            task.update(become=True, become_user=become_user, become_method="ansible.builtin.su")
        play = [{
            "name": "integration",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                task,
                {"name": "save result", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": out},
                 "check_mode": False, "diff": False},
            ],
        }]
        playbook = os.path.join(tmp, "play.yml")
        with open(playbook, "w") as f:
            yaml.safe_dump(play, f)
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + (interpreter or VENV_PYTHON), playbook]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(cmd, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=False)
        if not os.path.exists(out):
            raise AssertionError("ansible-playbook did not run the task:\n" + proc.stdout + proc.stderr)
        with open(out) as f:
            result = json.load(f)
        result["_stdout"] = proc.stdout
        return result


@pytest.fixture
def module_runner():
    return run_module
