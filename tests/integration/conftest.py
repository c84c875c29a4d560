"""Run residue.purge modules through real Ansible (ansible-playbook, local connection).

`run_module("discover", {...})` returns the registered task result as a dict, plus
`_stdout`/`_stderr` (what ansible-playbook printed: diffs, check-mode plans, warnings).
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
        ANSIBLE_PIPELINING="1",  # become to an unprivileged user without setfacl on the host
        PATH=os.path.dirname(VENV_PYTHON) + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra or {})
    return env


def run_module(module, args, check=False, diff=False, interpreter=None, env=None, timeout=600, become_user=None,
               extra_vars=None):
    """Run residue.purge.<module> with args on localhost; return its registered result. extra_vars go on
    ansible-playbook's command line (-e), where a process pattern can see them."""
    return run_module_batch(module, [args], check, diff, interpreter, env, timeout, become_user, extra_vars)[0]


def run_module_batch(module, args_list, check=False, diff=False, interpreter=None, env=None, timeout=600,
                     become_user=None, extra_vars=None):
    """Run the module once per args in one ansible-playbook (cheaper for many bad-input cases); list of results."""
    return run_tasks([dict(module=module, args=args, become_user=become_user) for args in args_list],
                     check, diff, interpreter, env, timeout, extra_vars)


def run_tasks(steps, check=False, diff=False, interpreter=None, env=None, timeout=600, extra_vars=None):
    """Run several modules in order in one ansible-playbook; list of their registered results.

    steps: [{"module": "remove" (a residue.purge module) or an FQCN, "args": {...},
             optional "become_user", "interpreter", "check_mode": bool (this task only)}]
    """
    with tempfile.TemporaryDirectory(prefix="residue-it-") as tmp:
        out = os.path.join(tmp, "result.json")
        tasks = []
        for i, step in enumerate(steps):
            module = step["module"] if "." in step["module"] else "residue.purge." + step["module"]
            task = {"name": "module under test %d" % i, module: step["args"], "register": "r%d" % i,
                    "ignore_errors": True}
            if step.get("become_user"):
                task.update(become=True, become_user=step["become_user"], become_method="ansible.builtin.su")
            if step.get("interpreter"):
                task["vars"] = {"ansible_python_interpreter": step["interpreter"]}
            if "check_mode" in step:
                task["check_mode"] = step["check_mode"]
            tasks.append(task)
        results = "[%s]" % ", ".join("r%d" % i for i in range(len(steps)))
        tasks.append({"name": "save results", "ansible.builtin.copy": {"content": "{{ %s | to_json }}" % results,
                                                                       "dest": out},
                      "check_mode": False, "diff": False})
        # the interpreter is a play var (not -e), so that a step's own interpreter can override it
        play = [{"name": "integration", "hosts": "localhost", "gather_facts": False, "tasks": tasks,
                 "vars": {"ansible_python_interpreter": interpreter or VENV_PYTHON}}]
        playbook = os.path.join(tmp, "play.yml")
        with open(playbook, "w") as f:
            yaml.safe_dump(play, f)
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        proc = subprocess.run(cmd, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=False)
        if not os.path.exists(out):
            raise AssertionError("ansible-playbook did not run the tasks:\n" + proc.stdout + proc.stderr)
        with open(out) as f:
            results = json.load(f)
        for result in results:
            result["_stdout"] = proc.stdout
            result["_stderr"] = proc.stderr  # warnings are displayed here
        return results


def assert_clean_failure(result, message, case=None):
    """The module refused its input with a clear message: failed, message present, no crash or traceback."""
    assert result.get("failed") is True, (case, result)
    assert message in result.get("msg", ""), (case, result.get("msg"))
    assert not result["msg"].startswith("Task failed: Module failed"), result["msg"]
    assert "Traceback" not in result.get("exception", "") + result.get("module_stderr", ""), result
    assert not result.get("changed")


@pytest.fixture
def module_runner():
    return run_module


@pytest.fixture
def module_batch_runner():
    return run_module_batch
