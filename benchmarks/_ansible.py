"""Time tasks the way users run them: one ansible-playbook on localhost (local connection, no facts)."""
import json
import os
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(TOP, ".build", "collections")
PY = sys.executable


def playbook(task, workdir, register=False):
    """Run one task through ansible-playbook: wall seconds, or (register=True) the size of its result in bytes."""
    out = os.path.join(workdir, "result.json")
    tasks = [dict(task)]
    if register:  # measured separately: saving the result is not part of the task's own cost
        tasks = [dict(task, register="r"), {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": out}}]
    path = os.path.join(workdir, "play.json")
    with open(path, "w") as f:
        json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], f)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", PATH=os.path.dirname(PY) + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + PY,
                    path], env=env, capture_output=True, check=True)
    seconds = time.perf_counter() - start
    return os.path.getsize(out) if register else seconds


PING = {"ansible.builtin.ping": {}}
