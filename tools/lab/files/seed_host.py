"""Seed one lab host with a realistic Open-AutoGLM installation and unrelated data that must survive.

Run as root on the host: seed_host.py WHEEL_DIR SCALE (or seed_host.py --systemd SCALE on a systemd host).  SCALE (1, 2, 3 ...) multiplies the model sizes
so hosts differ in the fleet report.  Prints a JSON summary.  Refuses to seed twice.

What a purge of the target `open_autoglm` must remove, per host:
  alice, bob: ~/.cache/open-autoglm, ~/.config/open-autoglm, HF repo zai-org/AutoGLM-Phone-9B (2 revisions
  for alice) in ~/.cache/huggingface/hub; the system cache /data/hf/hub (only known through the daemon's
  HF_HOME); pip distributions open-autoglm (+ its orphan autoglm-core) in /opt/ml/venv; the daemon
  (respawned by /usr/local/bin/open-autoglm-supervisor); its cron lines.
What must stay: THUDM/glm-edge-1.5b (its tokenizer blob is a hard link to AutoGLM's), sentence-x/minilm-l6 in
/data/hf, the labeler tool (shares tokenkit) and its running daemon, other cron lines, everything else.
"""
import hashlib
import json
import os
import pwd
import subprocess
import sys

MARKER = "/etc/residue-lab-seeded"
TARGET_REPO = "zai-org/AutoGLM-Phone-9B"
OTHER_REPO = "THUDM/glm-edge-1.5b"
SYSTEM_OTHER_REPO = "sentence-x/minilm-l6"
MIB = 1024 * 1024


def content(label, size):
    return hashlib.shake_256(label.encode()).digest(size)


def write(path, data, owner=None, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def hf_repo(hub, repo_id, revisions, refs, hardlink_from=None):
    """Write one repo in huggingface_hub's cache layout: blobs by sha256, snapshots of relative symlinks."""
    folder = os.path.join(hub, "models--" + repo_id.replace("/", "--"))
    blobs = os.path.join(folder, "blobs")
    locks = os.path.join(hub, ".locks", "models--" + repo_id.replace("/", "--"))
    os.makedirs(blobs, exist_ok=True)
    os.makedirs(locks, exist_ok=True)
    for commit, files in revisions.items():
        for name, data in files.items():
            sha = hashlib.sha256(data).hexdigest()
            blob = os.path.join(blobs, sha)
            if not os.path.exists(blob):
                shared = hardlink_from and os.path.join(hardlink_from, sha)
                if shared and os.path.exists(shared):
                    os.link(shared, blob)  # identical file shared with another repo: one inode, two names
                else:
                    write(blob, data)
            open(os.path.join(locks, sha + ".lock"), "a").close()
            link = os.path.join(folder, "snapshots", commit, name)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
    for ref, commit in refs.items():
        write(os.path.join(folder, "refs", ref), commit)
    return blobs


# Fixed uids no test on the machine itself gets: a lab host's processes are visible (and can be signalled) from
# the machine's PID namespace, and a test there that ends every process of its throwaway user's uid (the next free
# one, 1001 and up, the uid useradd would also give alice in the host's overlay) ended alice's processes in every
# lab host as well -- the purge's child acting as alice was killed and the host failed (test_awx_runner under a
# concurrent `make unit`, or make test's lanes).  tests/integration/trust_seed.py's users are 47301 and up.
UIDS = {"alice": 47201, "bob": 47202}


def user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--uid", str(UIDS[name]), "--shell", "/bin/bash", name],
                       check=True)
        return pwd.getpwnam(name)


def chown_tree(path, pw):
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)


def seed_user(pw, scale, two_revisions):
    home = pw.pw_dir
    tok = content("tokenizer", 96 * 1024)
    cfg = b'{"architectures": ["GlmForCausalLM"], "hidden_size": 4096}\n'
    revs = {"a1" * 20: {"config.json": cfg, "tokenizer.json": tok,
                        "model.safetensors": content(pw.pw_name + "weights-a", 2 * MIB * scale)}}
    refs = {"main": "a1" * 20}
    if two_revisions:
        revs["b2" * 20] = {"config.json": cfg, "tokenizer.json": tok,
                           "model.safetensors": content(pw.pw_name + "weights-b", MIB * scale)}
        refs["refs/pr/1"] = "b2" * 20
    hub = os.path.join(home, ".cache", "huggingface", "hub")
    target_blobs = hf_repo(hub, TARGET_REPO, revs, refs)
    hf_repo(hub, OTHER_REPO, {"c3" * 20: {"tokenizer.json": tok, "model.safetensors": content(pw.pw_name + "edge", MIB)}},
            {"main": "c3" * 20}, hardlink_from=target_blobs)
    # the tool's own residue
    write(os.path.join(home, ".cache", "open-autoglm", "sessions", "s1.db"), content(pw.pw_name + "db", 300 * 1024))
    write(os.path.join(home, ".cache", "open-autoglm", "logs", "agent.log"), "step 1: tap (120, 400)\n" * 2000)
    write(os.path.join(home, ".config", "open-autoglm", "config.yaml"), "model: %s\nadb: true\n" % TARGET_REPO)
    # a symlink inside the residue pointing at data that must stay (never followed)
    os.symlink("/srv/datasets", os.path.join(home, ".cache", "open-autoglm", "datasets"))
    # unrelated data that must stay byte for byte
    write(os.path.join(home, "projects", "app", "main.py"), "print('hello from %s')\n" % pw.pw_name)
    write(os.path.join(home, ".cache", "pip", "http", "ab", "cd"), content(pw.pw_name + "pip", 50 * 1024))
    write(os.path.join(home, ".config", "labeler", "config.toml"), "lang = 'en'\n")
    write(os.path.join(home, ".cache", "open-autoglm-notes.txt"), "not the tool's cache: a sibling with a similar name\n")
    chown_tree(os.path.join(home, ".cache"), pw)
    chown_tree(os.path.join(home, ".config"), pw)
    chown_tree(os.path.join(home, "projects"), pw)


def detach(argv, env=None, runas=None):
    """Start a daemon in its own session, all fds closed, so the SSH session can end."""
    if runas:
        argv = ["runuser", "-u", runas, "--"] + argv
    with open(os.devnull, "r+b") as null:
        subprocess.Popen(argv, stdin=null, stdout=null, stderr=null, start_new_session=True, env=env, close_fds=True)


DAEMON_SCRIPT = """#!/usr/bin/python3
# Open-AutoGLM agent daemon (lab stand-in): keeps its weights open.
import glob, os, time
hub = os.path.join(os.environ.get("HF_HOME", "/root/.cache/huggingface"), "hub")
held = [open(p, "rb") for p in glob.glob(hub + "/models--zai-org--AutoGLM-Phone-9B/snapshots/*/model.safetensors")]
held.append(open("/root/.cache/open-autoglm/sessions/s1.db", "rb"))
while True:
    time.sleep(3600)
"""

UNIT = """[Unit]
Description=%s

[Service]
Environment=HF_HOME=/srv/hf
ExecStart=%s
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def seed_systemd(scale):
    """A systemd host: open-autoglm.service (Restart=always) and an unrelated service that must keep running."""
    hf_repo("/srv/hf/hub", TARGET_REPO, {"d4" * 20: {"model.safetensors": content("system-weights", MIB * scale)}},
            {"main": "d4" * 20})
    hf_repo("/srv/hf/hub", SYSTEM_OTHER_REPO, {"e5" * 20: {"model.safetensors": content("minilm", MIB)}}, {"main": "e5" * 20})
    write("/root/.cache/open-autoglm/sessions/s1.db", content("root-db", 300 * 1024))
    write("/root/.config/open-autoglm/config.yaml", "model: %s\n" % TARGET_REPO)
    write("/srv/datasets/corpus.txt", content("corpus", 200 * 1024))
    write("/usr/local/bin/open-autoglm", DAEMON_SCRIPT, mode=0o755)
    write("/usr/local/bin/labeler-daemon", "#!/usr/bin/python3\nimport time\nwhile True:\n    time.sleep(3600)\n", mode=0o755)
    write("/etc/systemd/system/open-autoglm.service", UNIT % ("Open-AutoGLM phone agent", "/usr/local/bin/open-autoglm serve"))
    write("/etc/systemd/system/labeler.service", UNIT % ("Labeler (unrelated, must keep running)", "/usr/local/bin/labeler-daemon"))
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "enable", "--now", "open-autoglm.service", "labeler.service"], check=True)


def main():
    if sys.argv[1] == "--systemd":
        if not os.path.exists(MARKER):
            seed_systemd(int(sys.argv[2]))
            write(MARKER, "seeded\n")
            print(json.dumps({"changed": True}))
        else:
            print(json.dumps({"changed": False}))
        return
    wheel_dir, scale = sys.argv[1], int(sys.argv[2])
    if os.path.exists(MARKER):
        print(json.dumps({"changed": False}))
        return
    write("/srv/datasets/corpus.txt", content("corpus", 200 * 1024))
    write("/srv/datasets/README", "team data, not a cache\n")
    alice, bob = user("alice"), user("bob")
    seed_user(alice, scale, two_revisions=True)
    seed_user(bob, scale, two_revisions=False)
    # the system cache, known only from the daemon's environment (HF_HOME=/data/hf)
    sys_hub = "/data/hf/hub"
    system_files = {"model.safetensors": content("system-weights", 3 * MIB * scale), "config.json": b'{"hidden_size": 4096}\n'}
    hf_repo(sys_hub, TARGET_REPO, {"d4" * 20: system_files}, {"main": "d4" * 20})
    hf_repo(sys_hub, SYSTEM_OTHER_REPO, {"e5" * 20: {"model.safetensors": content("minilm", MIB)}}, {"main": "e5" * 20})
    # one virtualenv: open-autoglm and labeler share tokenkit
    venv = "/opt/ml/venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True)
    subprocess.run([venv + "/bin/pip", "install", "-q", "--no-index", "--find-links", wheel_dir,
                    "open-autoglm", "labeler"], check=True)
    # the supervisor that brings the daemon back (a tight restart loop: reap recognises a supervisor by seeing
    # it respawn within its 1 s window; a slower loop survives reap, see docs/lab.md)
    write("/usr/local/bin/open-autoglm-supervisor",
          "#!/bin/bash\n# keeps the phone agent up\nexport HF_HOME=/data/hf\n"
          "while true; do %s/bin/open-autoglm serve; sleep 0.2; done\n" % venv, mode=0o755)
    # cron: the target's lines among others
    crontab = ("# m h dom mon dow command\nMAILTO=\"\"\n*/10 * * * * /usr/bin/find /tmp -name '*.tmp' -delete\n"
               "@reboot %s/bin/open-autoglm serve --quiet\n0 3 * * * %s/bin/labeler --reindex\n" % (venv, venv))
    subprocess.run(["crontab", "-u", "alice", "-"], input=crontab.encode(), check=True)
    write("/etc/cron.d/ml-jobs", "SHELL=/bin/sh\n*/15 * * * * root %s/bin/python -m open_autoglm --once\n"
          "30 4 * * * root %s/bin/labeler nightly\n" % (venv, venv))
    # processes: the supervised daemon, the other tool's daemon, a log reader as bob
    env = dict(os.environ, HF_HOME="/data/hf")
    detach(["/usr/local/bin/open-autoglm-supervisor"], env=env)
    detach([venv + "/bin/labeler", "--serve"])
    detach(["tail", "-f", os.path.join(bob.pw_dir, ".cache", "open-autoglm", "logs", "agent.log")], runas="bob")
    write(MARKER, "seeded\n")
    print(json.dumps({"changed": True, "users": ["alice", "bob"], "scale": scale}))


if __name__ == "__main__":
    main()
