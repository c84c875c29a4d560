"""Seed one lab host for the trust-boundary attacks (tests/integration/test_trust_lab.py); run there as root.

Victims alice and carol with real residue of the target (and unrelated data); root-owned decoys with the target's
names and old times in /etc, /var/lib, /usr/share, /srv, /root; attackers, each an unprivileged user:
  mallory  processes whose environment points cache variables at system directories, /root and alice's home
           (plainly, and spelled //etc, ///usr//share);
  trudy    ~/.config -> /etc, ~/.cache -> /var/lib, ~/.local -> /usr (symlinks she owns in her own home);
  eve      a process whose TMPDIR is carol's residue (the denial of service: every purge used to fail), and one
           whose TMPDIR is her own residue (her own default path made protected: the purge used to fail too);
  mallory  also writes, in a team's shared venv (root's, /opt/teamvenv, site-packages writable by group team), a
           distribution whose RECORD lists the venv's bin/keepme, which only root may delete;
  and a setuid-like process (real uid mallory, effective root) with MODELSCOPE_CACHE=/usr/share/zoneinfo.
Prints JSON {"pids": {...}}.
"""
import json
import os
import pwd
import subprocess
import sys
import time

OLD = 1577836800  # 2020-01-01: older than any prune budget


def write(path, data, uid=0, old=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chown(path, uid, uid)
    if old:
        os.utime(path, (OLD, OLD))


def chown_tree(top, uid):
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), uid, uid)
    os.lchown(top, uid, uid)


UIDS = {"alice": 47301, "carol": 47302, "mallory": 47303, "trudy": 47304, "eve": 47305}


def user(name):
    """A user of the lab host with a uid no test on the machine itself uses: a lab host's processes are visible
    from the machine's PID namespace, so a test there that ends a uid's processes must not hit these."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-u", str(UIDS[name]), "-s", "/bin/sh", name], check=True)
        return pwd.getpwnam(name)


def hf_repo(hub, repo, data, uid=0):
    """A minimal HF hub cache repo (one revision, one blob, ref main), old."""
    folder = os.path.join(hub, "models--" + repo.replace("/", "--"))
    commit = "ab" * 20
    blob = "cd" * 32
    write(os.path.join(folder, "blobs", blob), data, uid)
    write(os.path.join(folder, "refs", "main"), commit, uid)
    snap = os.path.join(folder, "snapshots", commit)
    os.makedirs(snap, exist_ok=True)
    link = os.path.join(snap, "model.safetensors")
    if not os.path.lexists(link):
        os.symlink("../../blobs/" + blob, link)
    os.lchown(link, uid, uid)
    os.utime(link, (OLD, OLD), follow_symlinks=False)


def spawn(pw, env, ruid_only=False):
    """A long-running process of pw with exactly env (a hostile environment), detached from the SSH session."""
    def drop():
        os.setsid()
        if ruid_only:  # as a setuid-root program started by pw: real uid pw's, effective root
            os.setresuid(pw.pw_uid, 0, 0)
        else:
            os.setgroups([])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    with open(os.devnull, "r+b") as null:
        proc = subprocess.Popen(["/bin/sleep", "3600"], env=dict(env, PATH="/usr/bin:/bin"), preexec_fn=drop,
                                stdin=null, stdout=null, stderr=null, close_fds=True, cwd="/")
    return proc.pid


def team_venv(member):
    """/opt/teamvenv: root's venv whose site-packages group team (member in it) may write; member's distribution
    teamtool there lists ../../../bin/keepme (root's file of the venv) in its RECORD."""
    if subprocess.run(["getent", "group", "team"], capture_output=True, check=False).returncode != 0:
        subprocess.run(["groupadd", "team"], check=True)
    subprocess.run(["usermod", "-aG", "team", member.pw_name], check=True)
    venv = "/opt/teamvenv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages", venv], check=True)
    (site,) = [os.path.join(venv, "lib", v, "site-packages") for v in os.listdir(os.path.join(venv, "lib"))]
    write(venv + "/bin/keepme", "root's file of the team venv\n")
    os.chown(site, 0, __import__("grp").getgrnam("team").gr_gid)
    os.chmod(site, 0o2775)
    meta = os.path.join(site, "teamtool-1.0.dist-info")
    write(meta + "/METADATA", "Metadata-Version: 2.1\nName: teamtool\nVersion: 1.0\n\n", member.pw_uid)
    write(meta + "/INSTALLER", "pip\n", member.pw_uid)
    write(meta + "/RECORD", "../../../bin/keepme,,\nteamtool-1.0.dist-info/METADATA,,\n"
          "teamtool-1.0.dist-info/INSTALLER,,\nteamtool-1.0.dist-info/RECORD,,\n", member.pw_uid)
    chown_tree(meta, member.pw_uid)


def main():
    alice, carol = user("alice"), user("carol")
    mallory, trudy, eve = user("mallory"), user("trudy"), user("eve")
    # victims: the target's residue (a purge removes it), and data no profile names (must stay)
    for pw in (alice, carol):
        write(pw.pw_dir + "/.cache/open-autoglm/session.db", "session of %s\n" % pw.pw_name, pw.pw_uid)
        write(pw.pw_dir + "/.config/open-autoglm/config.yaml", "model: x\n", pw.pw_uid)
        chown_tree(pw.pw_dir + "/.cache", pw.pw_uid)
        chown_tree(pw.pw_dir + "/.config", pw.pw_uid)
    for rel in ("projects/thesis.tex", "keep/open-autoglm/notes.txt", "data/hub/weights.pt", "old-cache/pip/x"):
        write(alice.pw_dir + "/" + rel, "alice's %s\n" % rel, alice.pw_uid)
    for rel in ("projects", "keep", "data", "old-cache"):
        chown_tree(alice.pw_dir + "/" + rel, alice.pw_uid)
    # alice's own old pip cache: a prune removes it (legitimately)
    write(alice.pw_dir + "/.cache/pip/http/ab/cd", "alice's pip cache\n", alice.pw_uid)
    chown_tree(alice.pw_dir + "/.cache", alice.pw_uid)
    # root-owned decoys with the target's and the caches' names, old enough for any prune
    for path in ("/etc/open-autoglm/system.yaml", "/var/lib/open-autoglm/state.db",
                 "/usr/share/open-autoglm/README", "/var/lib/hub/checkpoints/resnet.pt", "/srv/datasets/old.csv",
                 "/root/trustenv-hf/datasets/squad/data.arrow", "/root/.trustenv-cache/open-autoglm/root-session.db",
                 "/var/lib/pip/http/ab/cd", "/var/lib/huggingface/datasets/x.arrow", "/usr/share/modelscope/m.bin"):
        write(path, "root's %s\n" % path)
    hf_repo("/srv/models/hub", "zai-org/AutoGLM-Phone-9B", b"system weights\n")
    hf_repo("/srv/models/hub", "BAAI/bge-small", b"other weights\n")
    hf_repo("/root/trustenv-hf/hub", "zai-org/AutoGLM-Phone-9B", b"root weights\n")
    hf_repo("/var/lib/huggingface/hub", "zai-org/AutoGLM-Phone-9B", b"service weights\n")  # trudy's ~/.cache/huggingface/hub
    # the attackers' own residue (theirs to lose)
    for pw in (mallory, eve):
        write(pw.pw_dir + "/.cache/open-autoglm/mine.db", "%s's own\n" % pw.pw_name, pw.pw_uid)
        chown_tree(pw.pw_dir + "/.cache", pw.pw_uid)
    # trudy: her own dot-dirs are symlinks to root's directories
    for name, target in ((".config", "/etc"), (".cache", "/var/lib"), (".local", "/usr")):
        path = os.path.join(trudy.pw_dir, name)
        if not os.path.islink(path):
            if os.path.isdir(path):
                os.rmdir(path) if not os.listdir(path) else os.rename(path, path + ".orig")
            os.symlink(target, path)
        os.lchown(path, trudy.pw_uid, trudy.pw_gid)
    team_venv(mallory)
    pids = {
        "mallory_system": spawn(mallory, {
            "XDG_CACHE_HOME": "/etc", "XDG_CONFIG_HOME": "/var/lib", "XDG_DATA_HOME": "/usr/share",
            "MODELSCOPE_CACHE": "/usr/share/zoneinfo", "PIP_CACHE_DIR": "/usr/share/doc", "TORCH_HOME": "/var/lib",
            "HF_HOME": "/root/trustenv-hf", "TMPDIR": "/var/lib"}),
        "mallory_spelled": spawn(mallory, {
            "XDG_CACHE_HOME": "//etc", "MODELSCOPE_CACHE": "//srv", "PIP_CACHE_DIR": "//var/lib/pip",
            "XDG_DATA_HOME": "///usr//share/.", "TMPDIR": "//etc"}),
        "mallory_hub": spawn(mallory, {"HF_HUB_CACHE": "/srv/models/hub", "TMPDIR": "/srv/models/hub/.."}),
        "mallory_root": spawn(mallory, {
            "XDG_CACHE_HOME": "/root/.trustenv-cache", "HF_HOME": "/root/trustenv-hf", "TMPDIR": "/root"}),
        "mallory_alice": spawn(mallory, {
            "XDG_CACHE_HOME": alice.pw_dir + "/keep", "PIP_CACHE_DIR": alice.pw_dir + "/old-cache/pip",
            "TORCH_HOME": alice.pw_dir + "/data", "MODELSCOPE_CACHE": alice.pw_dir + "/projects",
            "HF_HOME": alice.pw_dir + "/.cache/huggingface", "TMPDIR": alice.pw_dir}),
        "mallory_setuid": spawn(mallory, {"MODELSCOPE_CACHE": "/usr/share/modelscope", "TMPDIR": "/etc"},
                                ruid_only=True),
        "eve_dos": spawn(eve, {"TMPDIR": carol.pw_dir + "/.cache/open-autoglm"}),
        "eve_own": spawn(eve, {"TMPDIR": eve.pw_dir + "/.cache/open-autoglm"}),
    }
    time.sleep(0.3)  # until every exec has replaced the forked environment
    json.dump({"pids": pids}, sys.stdout)


if __name__ == "__main__":
    main()
