"""_remove.run as root on a shared host: a user's residue is sized, backed up and removed with that user's rights
(real throwaway users made with useradd, real files, real bind mounts), and protected directories are refused by
identity, whatever they are called. Each test checks everything outside the user's own files with a digest."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat
import subprocess
import tarfile
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils._profiles import ProfileError
from ansible_collections.residue.purge.plugins.module_utils._remove import RemoveError, resolve_items, run
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import as_user, chown_tree, digest, seed_as, write


# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox


PROFILE = {"trusttool": {"paths": ["{user_cache}/trusttool"]}}


def params(**kw):
    base = dict(paths=[], targets=[], profiles={}, homes=[], users="all", older_than=None, time_field="atime",
                keep=[], backup=None, backup_format="tar.gz", cross_filesystems=False, scan_processes=False)
    base.update(kw)
    return base


def profile_params(user, **kw):
    return params(targets=["trusttool"], profiles=PROFILE, users=[user.pw_name], **kw)


def test_the_users_own_residue_is_removed_and_owned_by_them(make_user):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    (item,) = resolve_items(profile_params(alice))
    assert item.path == residue and item.actor.uid == alice.pw_uid
    planned = run(profile_params(alice), check_mode=True)
    done = run(profile_params(alice))
    assert planned["removed"] == done["removed"]
    assert [(r["path"], r["owner"], r["whole"]) for r in done["removed"]] == [(residue, alice.pw_name, True)]
    assert done["failed_count"] == 0 and not os.path.lexists(residue)
    assert os.path.isfile("/etc/passwd")
    assert run(profile_params(alice))["changed"] is False


def test_what_the_user_cannot_remove_stays_and_is_named(make_user, sandbox):
    """Root-owned files in a directory the user cannot write, a hard link to a root file: the user's run
    removes the user's files, the kernel refuses the rest, the result names each refusal."""
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    locked = os.path.join(residue, "rootdir")
    os.mkdir(locked, 0o755)  # root's directory inside the user's residue: the user cannot write it
    write(os.path.join(locked, "root-file"), "root's", 0o644)
    rootfile = os.path.join(sandbox, "root-owned")
    write(rootfile, "root's secret", 0o600)
    os.link(rootfile, os.path.join(residue, "sub", "hardlink"))  # root made it (protected_hardlinks stops users)
    before_root = digest(locked)
    before_file = open(rootfile, "rb").read()
    result = run(profile_params(alice))
    assert digest(locked) == before_root
    assert open(rootfile, "rb").read() == before_file
    failed = dict((f["path"], f["error"]) for f in result["failures"])
    assert failed == {os.path.join(locked, "root-file"): "Permission denied"}
    assert result["failed_count"] == 1 and "failure" in result
    # the user's own files went (and the user's own name for root's file: unlinking it is theirs to do)
    assert sorted(os.listdir(residue)) == ["rootdir"]
    assert os.stat(rootfile).st_nlink == 1
    assert [r["owner"] for r in result["removed"]] == [alice.pw_name] and not result["removed"][0]["whole"]


def test_a_bind_mount_of_a_system_directory_inside_a_home_is_not_emptied(make_user, sandbox):
    """A bind mount (made by root, say for a container) of a root directory inside the user's residue, with
    cross_filesystems: the user's child enters it and the kernel refuses every unlink."""
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    system = os.path.join(sandbox, "fake-etc")
    os.makedirs(os.path.join(system, "sub"))
    write(os.path.join(system, "shadow"), "root:x", 0o640)
    write(os.path.join(system, "sub", "conf"), "conf", 0o644)
    before = digest(system)
    mnt = os.path.join(residue, "etc-bind")
    as_user(alice, "mkdir", mnt)
    subprocess.run(["mount", "--bind", system, mnt], check=True)
    try:
        result = run(profile_params(alice, cross_filesystems=True))
        assert digest(system) == before
        assert result["failed_count"] >= 2
        assert all(f["path"].startswith(mnt + "/") or f["path"] == mnt for f in result["failures"])
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(system) == before


def test_a_bind_mount_of_a_protected_directory_is_refused_by_identity(make_user, sandbox):
    """Root's own residue (an explicit path outside every home) holding a bind mount of a user's home: the
    walk (as root) never enters a protected directory reached by another name; named as a failure."""
    alice = make_user()
    seed_as(alice, os.path.join(alice.pw_dir, "work"))
    before = digest(alice.pw_dir)
    residue = os.path.join(sandbox, "srv-residue")
    os.makedirs(os.path.join(residue, "x"))
    write(os.path.join(residue, "x", "junk"), "junk")
    mnt = os.path.join(residue, "x", "home-bind")
    os.mkdir(mnt)
    subprocess.run(["mount", "--bind", alice.pw_dir, mnt], check=True)
    try:
        result = run(params(paths=[residue], cross_filesystems=True))
        assert digest(alice.pw_dir) == before
        assert [f["path"] for f in result["failures"]] == [mnt]
        assert "protected directory" in result["failures"][0]["error"]
        assert not os.path.exists(os.path.join(residue, "x", "junk"))
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(alice.pw_dir) == before


@pytest.mark.parametrize("how", ["bind", "root_symlink", "double_slash", "dot"])
def test_no_other_name_of_a_protected_directory_passes_check_path(make_user, sandbox, how):
    alice = make_user()
    before = digest(alice.pw_dir)
    other = os.path.join(sandbox, "other-name")
    if how == "bind":
        os.mkdir(other)
        subprocess.run(["mount", "--bind", alice.pw_dir, other], check=True)
    elif how == "root_symlink":
        os.symlink(alice.pw_dir, other)  # root's own link is followed, and compared by identity
    elif how == "double_slash":
        other = "/" + alice.pw_dir
    else:
        other = alice.pw_dir.replace("/home/", "/home/./")
    try:
        with pytest.raises(ProfileError, match="protected directory"):
            run(params(paths=[other], users=[alice.pw_name]))
        with pytest.raises(ProfileError, match="protected directory"):
            run(params(paths=[other], users=[alice.pw_name], cross_filesystems=True), check_mode=True)
    finally:
        if how == "bind":
            subprocess.run(["umount", other], check=True)
    assert digest(alice.pw_dir) == before


def test_a_bind_mount_of_an_ancestor_of_a_protected_directory_is_refused(make_user, sandbox):
    alice = make_user()
    other = os.path.join(sandbox, "homes-again")
    os.mkdir(other)
    subprocess.run(["mount", "--bind", os.path.dirname(alice.pw_dir), other], check=True)
    try:
        with pytest.raises(ProfileError, match="contains the protected directory"):
            run(params(paths=[other], users=[alice.pw_name]))
    finally:
        subprocess.run(["umount", other], check=True)


def test_an_explicit_path_inside_a_home_is_acted_on_as_that_user(make_user, sandbox):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, "models")
    seed_as(alice, residue)
    os.mkdir(os.path.join(residue, "rootdir"))
    write(os.path.join(residue, "rootdir", "keep"), "root's")
    (item,) = resolve_items(params(paths=[residue], users=[alice.pw_name]))
    assert item.actor.uid == alice.pw_uid
    result = run(params(paths=[residue], users=[alice.pw_name]))
    assert [f["path"] for f in result["failures"]] == [os.path.join(residue, "rootdir", "keep")]
    assert open(os.path.join(residue, "rootdir", "keep")).read() == "root's"


def test_a_user_symlinked_cache_dir_is_not_followed_and_is_named(make_user, sandbox):
    """~/.cache -> a root directory: the residue below it is refused (never reached through the link)."""
    alice = make_user()
    system = os.path.join(sandbox, "var-lib")
    os.makedirs(os.path.join(system, "trusttool"))
    write(os.path.join(system, "trusttool", "db"), "root's database")
    before = digest(system)
    shutil.rmtree(os.path.join(alice.pw_dir, ".cache"), ignore_errors=True)
    as_user(alice, "ln", "-s", system, os.path.join(alice.pw_dir, ".cache"))
    result = run(profile_params(alice))
    assert digest(system) == before
    assert result["changed"] is False
    # left out at resolution (_profiles.resolve_all) and named as a problem; never reached through the link
    named = [p for p in result["problems"] if os.path.join(alice.pw_dir, ".cache") in p and "symlink" in p]
    assert named and result["failures"] == [], result


def test_the_backup_is_read_with_the_users_rights_and_written_by_root(make_user, sandbox):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue, files=4)
    as_user(alice, "sh", "-c", "head -c 3000000 /dev/urandom > '%s'" % os.path.join(residue, "big"))
    before = digest(residue)
    backup_dir = os.path.join(sandbox, "backups")
    result = run(profile_params(alice, backup=backup_dir))
    assert not os.path.lexists(residue) and result["failed_count"] == 0
    archive = result["backup"]["path"]
    st = os.stat(archive)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    restore = os.path.join(sandbox, "restore")
    os.mkdir(restore)
    with tarfile.open(archive) as tar:
        extra = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        tar.extractall(restore, numeric_owner=True, **extra)
    assert digest(restore + residue) == before


def test_a_file_the_user_cannot_read_stops_the_backup_and_nothing_is_removed(make_user, sandbox):
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    seed_as(alice, residue)
    secret = os.path.join(sandbox, "secret")
    write(secret, "root only", 0o600)
    os.link(secret, os.path.join(residue, "secret-link"))  # root could read it; alice cannot
    before = digest(residue)
    backup_dir = os.path.join(sandbox, "backups")
    with pytest.raises(RemoveError, match="Permission denied.*nothing was removed"):
        run(profile_params(alice, backup=backup_dir))
    assert digest(residue) == before
    assert not os.path.isdir(backup_dir) or os.listdir(backup_dir) == []


def test_a_user_swapping_directories_for_symlinks_during_removal_reaches_nothing_else(make_user, sandbox):
    """The user races renames (a directory of their residue swapped for a symlink to a root directory and
    back) while root's run removes it: the root directory stays whole whatever the interleaving."""
    alice = make_user()
    residue = os.path.join(alice.pw_dir, ".cache", "trusttool")
    target = os.path.join(sandbox, "root-data")
    os.makedirs(os.path.join(target, "d"))
    for i in range(50):
        write(os.path.join(target, "d", "f%d" % i), "root %d" % i, 0o666)  # world-writable files, root's dir
    os.chmod(os.path.join(target, "d"), 0o777)  # even a directory the user could write, reached via a link
    before = digest(target)
    script = ("import os, time\n"
              "r = %r; t = %r\n"
              "end = time.time() + 4\n"
              "while time.time() < end:\n"
              "    for i in range(40):\n"
              "        d = os.path.join(r, 'x%%d' %% i)\n"
              "        try:\n"
              "            os.makedirs(os.path.join(d, 'in'), exist_ok=True)\n"
              "            open(os.path.join(d, 'in', 'f'), 'w').close()\n"
              "            os.rename(d, d + '.old')\n"
              "            os.symlink(t, d)\n"
              "            os.unlink(d)\n"
              "            os.rename(d + '.old', d)\n"
              "        except OSError:\n"
              "            pass\n" % (residue, os.path.join(target, "d")))
    as_user(alice, "mkdir", "-p", residue)
    racer = subprocess.Popen(["runuser", "-u", alice.pw_name, "--", "python3", "-c", script], cwd="/")
    try:
        deadline = time.time() + 4
        while time.time() < deadline:
            run(profile_params(alice))
            assert digest(target) == before
    finally:
        racer.wait(timeout=30)
    assert digest(target) == before


def test_a_stopped_child_fails_that_users_items_and_never_runs_as_root(make_user, monkeypatch):
    """The user can signal the child acting as them (same uid): a SIGSTOP makes that user's items fail (the
    stopped child is killed); root never redoes their work with its own rights; other users' items still go."""
    from ansible_collections.residue.purge.plugins.module_utils import _fork
    monkeypatch.setattr(_fork, "STALL_CHECK_SECONDS", 0.3)
    alice, bob = make_user(), make_user()
    for user in (alice, bob):
        seed_as(user, os.path.join(user.pw_dir, ".cache", "trusttool"))
    many = os.path.join(alice.pw_dir, ".cache", "trusttool", "many")
    as_user(alice, "sh", "-c", "mkdir -p '%s' && cd '%s' && seq 1 3000 | xargs touch" % (many, many))
    proc = realusers.stopper(alice)
    time.sleep(1)
    try:
        result = run(params(targets=["trusttool"], profiles=PROFILE, users=[alice.pw_name, bob.pw_name]))
    finally:
        proc.wait(timeout=30)
    assert not os.path.lexists(os.path.join(bob.pw_dir, ".cache", "trusttool"))
    assert os.path.isdir(many)  # nothing of alice's was done by root instead
    alices = [f for f in result["failures"] if f["path"].startswith(alice.pw_dir)]
    assert alices and all("acting as %s" % alice.pw_name in f["error"] for f in alices), result["failures"]


# ------------------------------------------------------------------------------------------ hf_cache

def test_hf_cache_deletes_a_users_cache_with_that_users_rights(make_user, sandbox):
    """A hub cache in alice's home: the deletions run as alice. A root-owned directory planted in a snapshot
    (alice cannot write it) stays and is named; alice's own files of the repo go; bob's cache is not touched
    by alice's child (and goes with bob's rights)."""
    from ansible_collections.residue.purge.plugins.module_utils._hfcache import plan as hf_plan, run as hf_run
    from ansible_collections.residue.purge.tests.unit.support import hfgen

    alice, bob = make_user(), make_user()
    caches = {}
    for user in (alice, bob):
        cache = os.path.join(user.pw_dir, ".cache", "huggingface", "hub")
        caches[user.pw_name] = (cache, hfgen.make_cache(cache, repos=2, seed=user.pw_uid % 97, max_file_size=4096))
        chown_tree(user, os.path.join(user.pw_dir, ".cache"))
    cache, repos = caches[alice.pw_name]
    snapshot = os.path.join(repos[0].path, "snapshots", repos[0].commits[0])
    planted = os.path.join(snapshot, "root-dir")
    os.mkdir(planted, 0o755)
    write(os.path.join(planted, "root-file"), "root's")
    p = {"homes": [], "users": [alice.pw_name, bob.pw_name]}
    actors = hf_run.cache_actors(p, [cache, caches[bob.pw_name][0]])
    assert actors[cache].uid == alice.pw_uid and actors[caches[bob.pw_name][0]].uid == bob.pw_uid
    sel = hf_plan.RepoSelection(patterns=[repos[0].repo_id, caches[bob.pw_name][1][0].repo_id], revisions="all")
    result = hf_run.clean([cache, caches[bob.pw_name][0]], sel, actors=actors)
    assert open(os.path.join(planted, "root-file")).read() == "root's"
    assert any(f.startswith(os.path.join(planted, "root-file")) and "Permission denied" in f
               for f in result["failures"]), result["failures"]
    assert not os.path.exists(caches[bob.pw_name][1][0].path)  # bob's went, as bob
    assert os.path.isdir(repos[1].path) and os.path.isdir(caches[bob.pw_name][1][1].path)
    # and the same cache with root's rights (no actor) would have removed root's file: the test can fail
    assert hf_run.cache_actors({"homes": [], "users": [alice.pw_name]}, ["/var/cache/x-hub"])["/var/cache/x-hub"].uid == 0


# ------------------------------------------------------------------------------------------ pip_remove

def test_pip_runs_a_user_site_or_home_environment_as_the_user_whoever_owns_its_files(make_user, sandbox):
    """A user-site install (or a venv in a home) whose site dir root owns (root ran pip --user there, say) is
    still the user's: pip runs with the user's uid, gid and all their groups, and what root put there stays."""
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    alice = make_user()
    site = os.path.join(alice.pw_dir, ".local", "lib", "python3.99", "site-packages")
    os.makedirs(site)  # root's
    probe = "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()), os.environ['HOME'])"
    for kind, path in (("user-site", os.path.join(alice.pw_dir, ".local")), ("venv", os.path.join(alice.pw_dir, ".local"))):
        env = _pyenvs.PyEnv(path, "/usr/bin/python3", kind, alice.pw_name if kind == "user-site" else "root",
                            [site], False)
        assert _pyenvs.environment_user(env).uid == alice.pw_uid
        rc, out, err = _pyenvs.run_in_environment(env, ["-c", probe])
        assert rc == 0, err
        uid, gid, rest = out.split(" ", 2)
        assert (int(uid), int(gid)) == (alice.pw_uid, alice.pw_gid)
        assert rest.strip().endswith(alice.pw_dir)
        assert rest.startswith(str(sorted(set(os.getgrouplist(alice.pw_name, alice.pw_gid)))))
    # a venv outside every home, owned by root, stays root's (system residue)
    system = _pyenvs.PyEnv(sandbox, "/usr/bin/python3", "venv", "root", [sandbox], False)
    assert _pyenvs.environment_user(system) is None


def root_venv(sandbox):
    """A venv of root's outside every home (system residue: pip runs as root there), pip from the system
    Python's site: (venv path, its site-packages)."""
    path = os.path.join(sandbox, "opt", "venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages", path], check=True)
    (site,) = [os.path.join(path, "lib", v, "site-packages") for v in os.listdir(os.path.join(path, "lib"))]
    return path, site


def fake_dist(site, name, record_lines, owner=None, files=()):
    """A pip-installed distribution written by hand: its files, METADATA, INSTALLER and a RECORD of
    record_lines (paths relative to site) plus its own metadata files."""
    meta = os.path.join(site, "%s-1.0.dist-info" % name)
    os.makedirs(meta)
    for rel in files:
        write(os.path.join(site, rel), "code of %s" % name)
    write(os.path.join(meta, "METADATA"), "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n\n" % name)
    write(os.path.join(meta, "INSTALLER"), "pip\n")
    own = ["%s-1.0.dist-info/%s,," % (name, n) for n in ("METADATA", "INSTALLER", "RECORD")]
    write(os.path.join(meta, "RECORD"), "".join("%s,,\n" % line for line in list(files) + list(record_lines))
          + "\n".join(own) + "\n")
    if owner is not None:
        chown_tree(owner, meta)
    return meta


def pip_params(envs, packages, **kw):
    base = dict(packages=packages, targets=[], profiles={}, keep=[], orphans=False, remove_required=False,
                allow_system=True, environments=envs, search_roots=None, include_system=False, max_depth=4,
                homes=[], users="all")
    base.update(kw)
    return base


def test_pip_as_root_never_acts_on_a_record_a_user_could_write(make_user, sandbox):
    """A shared root venv whose site-packages mallory's group may write (a team's environment): mallory writes
    a distribution whose RECORD lists the venv's bin/keepme, which only root can delete. The old code ran
    pip as root on it and bin/keepme was gone. Now pip does not run as root on anything a user could have
    written or swapped: mallory's distribution and root's own one in that directory are refused and named
    (check mode too); the same root distribution in a root-only venv goes."""
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    mallory = make_user()
    venv, site = root_venv(sandbox)
    keepme = os.path.join(venv, "bin", "keepme")
    write(keepme, "root's")
    os.chown(site, 0, mallory.pw_gid)
    os.chmod(site, 0o2775)
    good = fake_dist(site, "good", [], files=["good.py"])
    evil = fake_dist(site, "evil", [os.path.relpath(keepme, site)], owner=mallory)
    p = pip_params([venv], ["good", "evil"])
    for result in (_pyenvs.run(p, check_mode=True), _pyenvs.run(p)):
        (entry,) = result["environments"]
        assert entry["removed"] == [] and entry["status"] == "failed" and result.get("failure"), entry
        assert "evil: not removed" in entry["error"] and "good: not removed" in entry["error"], entry["error"]
        assert "%s can be written by others than root (mode 2775, group %s)" % (site, mallory.pw_name) in entry["error"]
    assert os.path.isfile(keepme) and os.path.isdir(evil) and os.path.isdir(good)
    os.chmod(site, 0o755)
    os.chown(site, 0, 0)
    shutil.rmtree(evil)
    done = _pyenvs.run(pip_params([venv], ["good"]))
    assert [e["name"] for e in done["environments"][0]["removed"]] == ["good"] and not os.path.exists(good), done


def test_pip_as_root_never_deletes_another_users_files_through_a_bind_mount(make_user, sandbox):
    """root's venv holds a bind mount of bob's home (root made it to share data), and root's own distribution's
    RECORD lists bob's notes through it. pip as root would delete bob's file (it is inside the venv's prefix);
    the distribution is refused by identity (bob's home, a protected directory under another name)."""
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    bob = make_user()
    as_user(bob, "sh", "-c", "echo notes > '%s'" % os.path.join(bob.pw_dir, "notes.txt"))
    before = digest(bob.pw_dir)
    venv, site = root_venv(sandbox)
    mnt = os.path.join(site, "shared")
    os.mkdir(mnt)
    fake_dist(site, "data", ["shared/notes.txt"], files=["data.py"])
    subprocess.run(["mount", "--bind", bob.pw_dir, mnt], check=True)
    try:
        planned = _pyenvs.run(pip_params([venv], ["data"]), check_mode=True)
        done = _pyenvs.run(pip_params([venv], ["data"]))
        assert digest(bob.pw_dir) == before
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(bob.pw_dir) == before
    for result in (planned, done):
        (entry,) = result["environments"]
        assert entry["status"] == "failed" and entry["removed"] == [], entry
        assert "protected directory %s under another name" % bob.pw_dir in entry["error"], entry["error"]


def test_a_user_sites_distributions_are_read_with_the_users_rights(make_user, sandbox):
    """alice's user site holds a distribution whose METADATA is a link to a root-only file naming 'rootsecret':
    read as alice (as pip will run there) it cannot be opened, so nothing of root's file is reported or acted
    on; the old code read it as root and listed 'rootsecret' as found. A FIFO planted as METADATA in a root
    environment does not hang the run (it used to block root's open forever)."""
    import signal
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    alice = make_user()
    secret = os.path.join(sandbox, "root-only")
    os.mkdir(secret, 0o700)
    write(os.path.join(secret, "META"), "Metadata-Version: 2.1\nName: rootsecret\nVersion: 9\n\n", 0o600)
    site = os.path.join(alice.pw_dir, ".local", "lib", "python3.11", "site-packages")
    as_user(alice, "mkdir", "-p", os.path.join(site, "x-1.0.dist-info"))
    as_user(alice, "ln", "-s", os.path.join(secret, "META"), os.path.join(site, "x-1.0.dist-info", "METADATA"))
    env = _pyenvs.PyEnv(os.path.join(alice.pw_dir, ".local"), "/usr/bin/python3", "user-site", alice.pw_name,
                        [site], False)
    assert [d.name for d in _pyenvs.installed_distributions(env)] == ["rootsecret"]  # what root would read
    assert _pyenvs.distributions_of(env) == []  # alice's child cannot open it: nothing of it is listed
    entry = _pyenvs.purge_environment(env, ["rootsecret"], check_mode=True)
    assert entry["found"] == [] and entry["status"] == "absent", entry
    from ansible_collections.residue.purge.plugins.module_utils import _discover, _profiles
    problems = _discover.Problems()
    found = _discover.find_packages({"t": {"pip": ["rootsecret"]}}, _profiles.list_users(users=[alice.pw_name]),
                                    [alice.pw_dir], problems)
    assert found == [], found  # discover's inventory reads it as alice too
    venv, vsite = root_venv(sandbox)
    meta = os.path.join(vsite, "fifo-1.0.dist-info")
    os.mkdir(meta)
    os.mkfifo(os.path.join(meta, "METADATA"))

    def hung(_signum, _frame):
        raise AssertionError("reading a FIFO planted as METADATA blocked")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # the old code blocked here for ever
    try:
        found = _pyenvs.installed_distributions(_pyenvs.resolve_environment(venv))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert [d.name for d in found] == []


def plain_venv(path):
    """A venv's layout, enough to be found (pyvenv.cfg, bin/python, lib/python3.11/site-packages)."""
    os.makedirs(os.path.join(path, "lib", "python3.11", "site-packages"))
    os.makedirs(os.path.join(path, "bin"))
    write(os.path.join(path, "pyvenv.cfg"), "home = /usr/bin\n")
    os.symlink("/usr/bin/python3", os.path.join(path, "bin", "python"))
    return path


def test_a_users_home_is_searched_for_environments_with_her_rights(make_user, sandbox):
    """pip_remove's search (search_roots: the directory that holds the homes, users: alice) lists each home as its
    user: a root-only directory root made in alice's home, with a venv in it, is not listed (the code before
    listed every home as root and found it), and neither is the one in bob's home (bob is not in the run, but his
    home is his: it is listed as bob). Their own venvs are found, and a root-owned venv in bob's home is still
    bob's (whose home holds it is asked of every user, not only the run's)."""
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    alice, bob = make_user(), make_user()
    homes = os.path.dirname(alice.pw_dir)
    for user in (alice, bob):
        plain_venv(os.path.join(user.pw_dir, "proj", ".venv"))
        chown_tree(user, os.path.join(user.pw_dir, "proj"))
        hidden = os.path.join(user.pw_dir, "root-only")
        os.mkdir(hidden, 0o700)
        plain_venv(os.path.join(hidden, "env"))
    roots_venv = plain_venv(os.path.join(bob.pw_dir, "shared-env"))  # root's files in bob's home
    p = pip_params([], ["nothing-installed-anywhere"], search_roots=[homes], users=[alice.pw_name],
                   include_system=False)
    mine, his = os.path.join(alice.pw_dir, "proj", ".venv"), os.path.join(bob.pw_dir, "proj", ".venv")
    envs = _pyenvs.environments(p)
    assert sorted(e.path for e in envs if e.kind == "venv") == sorted([mine, his, roots_venv]), envs
    owners = dict((e.path, _pyenvs.environment_user(e).uid) for e in envs if e.kind == "venv")
    assert owners == {mine: alice.pw_uid, his: bob.pw_uid, roots_venv: bob.pw_uid}, owners
    result = _pyenvs.run(p, check_mode=True)
    assert sorted(e["path"] for e in result["environments"]) == sorted([mine, his, roots_venv]), result


def test_a_home_whose_listing_child_fails_is_left_out_and_named(make_user, sandbox):
    """The child that would list alice's home cannot start (a thread is running: the real failure path, no race):
    her environments are left out and named in problems, never listed by root instead; root's own venv outside
    every home is still found."""
    import threading
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    alice = make_user()
    plain_venv(os.path.join(alice.pw_dir, "proj", ".venv"))
    chown_tree(alice, os.path.join(alice.pw_dir, "proj"))
    roots_venv = plain_venv(os.path.join(sandbox, "opt", "venv"))
    p = pip_params([], ["nothing-installed-anywhere"], search_roots=[alice.pw_dir, os.path.join(sandbox, "opt")],
                   users=[alice.pw_name], include_system=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        result = _pyenvs.run(p, check_mode=True)
    finally:
        stop.set()
        thread.join()
    assert [e["path"] for e in result["environments"]] == [roots_venv], result["environments"]
    assert [q for q in result["problems"] if alice.pw_name in q] == [
        "Python environments in the home of %s are not listed: could not start a process as %s (fork failed or "
        "threads are running)" % (alice.pw_name, alice.pw_name)], result["problems"]


def test_an_environment_given_in_a_home_is_looked_at_with_her_rights(make_user):
    """environments: given by path, in alice's home: recognised as alice sees it. Her own venv is; one in a
    root-only directory root made in her home does not exist for her, and the task says so (the code before
    looked at it as root and went on to read and plan it)."""
    from ansible_collections.residue.purge.plugins.module_utils import _pyenvs
    alice = make_user()
    mine = plain_venv(os.path.join(alice.pw_dir, "proj", ".venv"))
    chown_tree(alice, os.path.join(alice.pw_dir, "proj"))
    hidden = os.path.join(alice.pw_dir, "root-only")
    os.mkdir(hidden, 0o700)
    theirs = plain_venv(os.path.join(hidden, "env"))
    (env,) = _pyenvs.environments(pip_params([mine], ["x"]))
    assert (env.path, env.kind, env.user) == (mine, "venv", alice.pw_name)
    with pytest.raises(ValueError) as raised:
        _pyenvs.environments(pip_params([theirs], ["x"]))
    assert str(raised.value) == "environments: %s does not exist" % theirs
