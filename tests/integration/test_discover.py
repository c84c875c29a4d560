"""residue.purge.discover through real Ansible, against real users, files, processes and HF caches.

Oracles: `du -sB1` / `du -sxB1` for disk usage, huggingface_hub.scan_cache_dir for HF repos (test only).
"""
import os
import random
import shutil
import string
import subprocess
import sys
import time

import pytest
from huggingface_hub import scan_cache_dir

from ansible_collections.residue.purge.tests.unit.support import hfgen

from conftest import assert_clean_failure, run_tasks

SUFFIX = "".join(random.choice(string.ascii_lowercase + string.digits) for dummy in range(6))


def du(path, one_file_system=True):
    flags = "-sxB1" if one_file_system else "-sB1"
    out = subprocess.run(["du", flags, path], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0])


def count_files(path):
    """Regular files, a hard-linked file once (as du counts its blocks)."""
    out = subprocess.run(["find", path, "-xdev", "-type", "f", "-printf", "%D:%i\\n"], capture_output=True,
                         check=True).stdout
    return len(set(out.split()))


def write(path, data=b"x" * 5000):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def sandbox():
    """A world-traversable scratch dir (pytest's tmp_path is 0700, closed to the test users)."""
    import pathlib
    import tempfile
    path = tempfile.mkdtemp(prefix="rp-discover-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


@pytest.fixture
def two_users(sandbox):
    """Two real throwaway users with homes in the sandbox; removed afterwards."""
    users = []
    for n in (1, 2):
        name = "rp%s%d" % (SUFFIX, n)
        home = str(sandbox / "home" / name)
        os.makedirs(os.path.dirname(home), exist_ok=True)
        subprocess.run(["useradd", "-m", "-d", home, "-s", "/bin/sh", name], check=True)
        import pwd
        entry = pwd.getpwnam(name)
        users.append((name, home, entry.pw_uid, entry.pw_gid))
    yield users
    for name, _home, _uid, _gid in users:
        subprocess.run(["userdel", name], check=False)


def chown_tree(path, uid, gid):
    subprocess.run(["chown", "-R", "-h", "%d:%d" % (uid, gid), path], check=True)


def hf_oracle(cache):
    """{(repo_type, repo_id): (size_on_disk, {commit: (refs, size_on_disk)})} as huggingface_hub sees it."""
    info = scan_cache_dir(cache)
    result = {}
    for r in info.repos:
        revisions = dict((rev.commit_hash, (sorted(rev.refs), rev.size_on_disk)) for rev in r.revisions)
        result[(r.repo_type, r.repo_id)] = (r.size_on_disk, revisions)
    return result


def ours(result, target=None):
    return dict(
        ((r["repo_type"], r["repo_id"]), (r["blob_bytes"], dict((rev["commit"], (rev["refs"], rev["bytes"]))
                                                                for rev in r["revisions"])))
        for r in result["residues"] if r["kind"] == "hf_repo" and (target is None or r["target"] == target))


def test_two_users_and_a_daemon_with_its_own_hf_home(module_runner, sandbox, two_users):
    (u1, h1, uid1, gid1), (u2, h2, uid2, gid2) = two_users
    daemon_name = "open-autoglm-" + SUFFIX
    # user 1: caches and configs of the tool, and its model in the default HF cache
    write(os.path.join(h1, ".cache/open-autoglm/session/state.bin"), os.urandom(70000))
    write(os.path.join(h1, ".cache/open-autoglm/log.txt"), b"hello\n")
    os.link(os.path.join(h1, ".cache/open-autoglm/log.txt"), os.path.join(h1, ".cache/open-autoglm/log.hardlink"))
    write(os.path.join(h1, ".config/open-autoglm/config.yaml"), b"model: zai-org/AutoGLM-Phone-9B\n")
    write(os.path.join(h1, ".cache/huggingface/token"), b"hf_secret")
    hfgen.add_repo(os.path.join(h1, ".cache/huggingface/hub"), "zai-org/AutoGLM-Phone-9B", revisions=2)
    hfgen.add_repo(os.path.join(h1, ".cache/huggingface/hub"), "zai-org/GLM-4-9B", revisions=2)
    # user 2: only the model, in a cache that another tool shares
    hfgen.add_repo(os.path.join(h2, ".cache/huggingface/hub"), "zai-org/AutoGLM-Phone-9B", revisions=1)
    hfgen.add_repo(os.path.join(h2, ".cache/huggingface/hub"), "BAAI/bge-small", revisions=1)
    chown_tree(h1, uid1, gid1)
    chown_tree(h2, uid2, gid2)
    # a daemon of user 2 started with HF_HOME somewhere no profile names
    data_hf = str(sandbox / "data" / "hf")
    hfgen.add_repo(os.path.join(data_hf, "hub"), "zai-org/AutoGLM-Phone-9B", revisions=2)
    chown_tree(data_hf, uid2, gid2)  # user 2's own cache: a user's HF_HOME counts only where that user owns it
    exe = str(sandbox / daemon_name)
    shutil.copy("/bin/sleep", exe)
    daemon = subprocess.Popen([exe, "300"], env={"HF_HOME": data_hf, "PATH": "/usr/bin:/bin"}, user=uid2, group=gid2)
    try:
        time.sleep(0.2)
        result = module_runner("discover", {
            "targets": ["open_autoglm", "huggingface"],
            "users": [u1, u2],
            "profiles": {"open_autoglm": {"processes": {"names": [daemon_name], "cmdline": []}}},
        })
    finally:
        daemon.kill()
        daemon.wait()
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert sorted(result["users"]) == sorted([u1, u2])

    paths = dict((r["path"], r) for r in result["residues"] if r["kind"] == "path" and r["target"] == "open_autoglm")
    assert sorted(paths) == [os.path.join(h1, ".cache/open-autoglm"), os.path.join(h1, ".config/open-autoglm")]
    for path, r in paths.items():
        assert r["bytes"] == du(path), path
        assert r["files"] == count_files(path), path
        assert r["user"] == u1
    assert not any("token" in r["path"] for r in result["residues"])

    caches = dict((c["path"], c) for c in result["hf_caches"])
    assert caches[os.path.join(h1, ".cache/huggingface/hub")]["user"] == u1
    assert caches[os.path.join(h2, ".cache/huggingface/hub")]["source"] == "default"
    assert caches[os.path.join(data_hf, "hub")]["source"] == "process %d (HF_HOME)" % daemon.pid

    autoglm = [r for r in result["residues"] if r["kind"] == "hf_repo" and r["target"] == "open_autoglm"]
    assert sorted(os.path.dirname(r["path"]) for r in autoglm) == sorted(
        [os.path.join(h1, ".cache/huggingface/hub"), os.path.join(h2, ".cache/huggingface/hub"),
         os.path.join(data_hf, "hub")])
    assert all(r["repo_id"] == "zai-org/AutoGLM-Phone-9B" for r in autoglm)
    for cache in caches:
        oracle = hf_oracle(cache)
        for key, value in oracle.items():
            found = [r for r in result["residues"] if r["kind"] == "hf_repo" and r["target"] == "huggingface"
                     and (r["repo_type"], r["repo_id"]) == key and r["path"].startswith(cache + "/")]
            assert len(found) == 1, (cache, key)
            assert (found[0]["blob_bytes"], dict((rev["commit"], (rev["refs"], rev["bytes"]))
                                                 for rev in found[0]["revisions"])) == value
            assert found[0]["bytes"] == du(found[0]["path"])
        assert oracle  # every cache holds repos, and the huggingface target listed each of them

    procs = [p for p in result["processes"] if p["pid"] == daemon.pid]
    assert procs and procs[0]["target"] == "open_autoglm" and procs[0]["user"] == u2
    unique = set(r["path"] for r in result["residues"])
    assert result["total_bytes"] == sum(next(r["bytes"] for r in result["residues"] if r["path"] == p) for p in unique)


@pytest.mark.parametrize("windows_style", [False, True])
def test_hf_repos_match_huggingface_hub_on_broken_caches(module_runner, sandbox, windows_style):
    cache = str(sandbox / "hub")
    repos = hfgen.make_cache(cache, repos=9, revisions_per_repo=3, files_per_revision=8, seed=7,
                             windows_style=windows_style)
    if not windows_style:
        hfgen.add_detached_revision(repos[0])
        hfgen.add_missing_ref(repos[1])
        hfgen.add_broken_symlink(repos[2])
        hfgen.add_incomplete(repos[3], size=12345)
    hfgen.add_no_exist(repos[4])
    home = sandbox / "emptyhome"
    home.mkdir()
    result = module_runner("discover", {"targets": ["huggingface"], "homes": [str(home)], "scan_processes": False,
                                        "extra_hf_caches": [cache]})
    assert not result.get("failed"), result.get("msg")
    mine, oracle = ours(result), hf_oracle(cache)
    # huggingface_hub drops a repo it finds corrupted (and says so in warnings); we still report it, with problems
    corrupted = [str(w) for w in scan_cache_dir(cache).warnings]
    assert dict((k, v) for k, v in mine.items() if k in oracle) == oracle
    for repo_type, repo_id in set(mine) - set(oracle):
        folder = "%ss--%s" % (repo_type, repo_id.replace("/", "--"))
        assert any(folder in w for w in corrupted), (repo_id, corrupted)
        assert any(folder in p for p in result["problems"]), (repo_id, result["problems"])
    assert len(mine) == 9
    for r in result["residues"]:
        assert r["bytes"] == du(r["path"]), r["path"]
    if not windows_style:
        assert any("refs/pr/99" in p or "missing" in p for p in result["problems"]), result["problems"]
        assert any("broken.bin" in p for p in result["problems"]), result["problems"]


def test_hostile_tree_is_never_followed(module_runner, sandbox):
    home = sandbox / "h"
    residue = home / ".cache" / "open-autoglm"
    residue.mkdir(parents=True)
    write(str(residue / "model.bin"), os.urandom(100000))
    os.symlink("/", str(residue / "root-link"))
    os.symlink("/usr", str(residue / "usr-link"))
    os.symlink("loop", str(residue / "loop"))
    (residue / "a").mkdir()
    os.symlink("..", str(residue / "a" / "up"))
    write(str(residue / "new\nline.txt"), b"1" * 3000)
    write(os.path.join(os.fsencode(str(residue)), b"latin1-\xe9\xff.bin").decode("utf-8", "surrogateescape"),
          b"2" * 7000)
    deep = str(residue / "deep")
    os.makedirs(deep)
    fd = os.open(deep, os.O_RDONLY)
    try:
        for dummy in range(3000):  # deeper than PATH_MAX allows as one path
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"leaf" * 1000)
    finally:
        os.close(fd)
    result = module_runner("discover", {"targets": ["open_autoglm"], "homes": [str(home)], "scan_processes": False})
    assert not result.get("failed"), result.get("msg")
    (r,) = [r for r in result["residues"] if r["kind"] == "path"]
    assert r["path"] == str(residue)
    assert r["bytes"] == du(str(residue))
    assert r["files"] == 4  # model.bin, the newline name, the latin-1 name, the deep leaf
    subprocess.run(["rm", "-rf", deep], check=True)  # pytest's own cleanup recurses and would give up


def test_unreadable_home_is_a_problem_not_a_failure(module_runner, sandbox, two_users):
    (u1, h1, uid1, gid1), (u2, h2, uid2, gid2) = two_users
    write(os.path.join(h1, ".cache/open-autoglm/a.bin"))
    write(os.path.join(h2, ".cache/open-autoglm/b.bin"))
    secret = os.path.join(h1, ".cache/open-autoglm/private")
    write(os.path.join(secret, "c.bin"))
    chown_tree(h1, uid1, gid1)
    chown_tree(h2, uid2, gid2)
    os.chmod(h2, 0o700)
    os.chmod(secret, 0o000)
    result = module_runner("discover", {"targets": ["open_autoglm"], "users": [u1, u2], "scan_processes": False},
                           become_user=u1, interpreter="/usr/bin/python3")  # the venv lives under 0700 /root
    assert not result.get("failed"), result.get("msg")
    assert [r["path"] for r in result["residues"]] == [os.path.join(h1, ".cache/open-autoglm")]
    assert any("private" in p and "ermission" in p for p in result["problems"]), result["problems"]
    # the private dir's own blocks are counted (as du does), its content cannot be
    assert result["residues"][0]["files"] == 1
    assert "[WARNING]" in result["_stderr"] and "private" in result["_stderr"]
    assert "home %s of user %s is not readable" % (h2, u2) in "\n".join(result["problems"])


def test_other_filesystems_not_entered_unless_told(sandbox):
    home = sandbox / "h"
    residue = home / ".cache" / "open-autoglm"
    mnt = residue / "mounted"
    mnt.mkdir(parents=True)
    write(str(residue / "own.bin"), os.urandom(20000))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        write(str(mnt / "other-fs.bin"), os.urandom(300000))
        args = {"targets": ["open_autoglm"], "homes": [str(home)], "scan_processes": False}
        # one ansible-playbook for both runs (a playbook's start costs more CPU than a module run)
        same, cross = run_tasks([{"module": "discover", "args": args},
                                 {"module": "discover", "args": dict(args, one_file_system=False)}])
        assert same["residues"][0]["bytes"] == du(str(residue), one_file_system=True)
        assert cross["residues"][0]["bytes"] == du(str(residue), one_file_system=False)
        assert cross["residues"][0]["bytes"] >= same["residues"][0]["bytes"] + 300000
        assert same["residues"][0]["files"] == 1 and cross["residues"][0]["files"] == 2
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_older_than_and_multiple_targets(sandbox):
    home = sandbox / "h"
    old = home / ".cache" / "old-tool"
    new = home / ".cache" / "new-tool"
    write(str(old / "x.bin"))
    write(str(new / "y.bin"))
    past = time.time() - 40 * 86400
    for p in (old, old / "x.bin"):
        os.utime(str(p), (past, past))
    profiles = {"old_tool": {"paths": ["{user_cache}/old-tool"]}, "new_tool": {"paths": ["{user_cache}/new-tool"]},
                "alias": {"paths": ["{user_cache}/old-tool"]}}
    args = {"targets": ["old_tool", "new_tool", "alias"], "homes": [str(home)], "scan_processes": False,
            "profiles": profiles}
    everything, stale = run_tasks([{"module": "discover", "args": args},
                                   {"module": "discover", "args": dict(args, older_than="30d"), "check_mode": True}])
    assert sorted((r["target"], os.path.basename(r["path"])) for r in everything["residues"]) == [
        ("alias", "old-tool"), ("new_tool", "new-tool"), ("old_tool", "old-tool")]
    assert everything["total_bytes"] == du(str(old)) + du(str(new))  # a location counted once
    assert sorted(r["target"] for r in stale["residues"]) == ["alias", "old_tool"]
    assert stale["changed"] is False


BAD_OPTIONS = [
    ({"targets": ["no_such_tool"]}, "unknown target(s) no_such_tool"),
    ({"homes": ["relative/home"]}, "not an absolute path"),
    ({"homes": ["/"]}, "'/' is not a home"),
    ({"homes": [""]}, "homes"),
    ({"older_than": "soon"}, "older_than"),
    ({"extra_hf_caches": ["hub"]}, "extra_hf_caches"),
    ({"users": 5}, "users must be"),
    ({"users": ["no-such-user-" + SUFFIX], "homes": []}, "no such user"),
    ({"users": ["root"]}, "mutually exclusive"),
    ({"targets": ["x"], "profiles": {"x": {"paths": ["{nope}/x"]}}}, "profile 'x' field paths[0]: unknown placeholder"),
    ({"targets": ["x"], "profiles": {"x": {"colour": 1}}}, "profile 'x': unknown key(s) colour"),
    ({"targets": ["x"], "profiles": {"x": {"paths": ["{user_config}"]}}}, "protected directory"),
    ({"targets": ["x"], "profiles": {"x": {"paths": ["{home}"]}}}, "protected directory"),
    ({"scan_processes": "maybe"}, "scan_processes"),
    ({"targets": "open_autoglm", "bogus_option": 1}, "bogus_option"),
]


def test_bad_options_fail_clearly(module_batch_runner, sandbox):
    home = sandbox / "h"
    write(str(home / ".cache/open-autoglm/keep.bin"))
    cases = []
    for args, _message in BAD_OPTIONS:
        args = dict(args)
        args.setdefault("homes", [str(home)])
        cases.append(args)
    results = module_batch_runner("discover", cases)
    assert len(results) == len(BAD_OPTIONS)
    for result, (args, message) in zip(results, BAD_OPTIONS):
        assert_clean_failure(result, message, case=args)


def test_psutil_missing_is_a_warning_for_discover(module_runner, sandbox):
    bare = str(sandbox / "bare-venv")  # a real interpreter with the stdlib only
    subprocess.run([os.path.realpath(sys.executable), "-m", "venv", "--without-pip", bare], check=True)
    python = os.path.join(bare, "bin", "python")
    assert subprocess.run([python, "-c", "import psutil"], capture_output=True, check=False).returncode != 0
    home = sandbox / "h"
    write(str(home / ".cache/open-autoglm/a.bin"))
    result = module_runner("discover", {"targets": ["open_autoglm"], "homes": [str(home)], "scan_processes": False},
                           interpreter=python)
    assert not result.get("failed"), result.get("msg")
    assert [r["path"] for r in result["residues"]] == [str(home / ".cache/open-autoglm")]
    assert result["processes"] == []
    assert any("processes not listed" in p and "psutil" in p for p in result["problems"]), result["problems"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_shared_store_cache_exclusive_bytes_and_total(module_runner, sandbox):
    """huggingface_hub 2.x shared store, built by huggingface_hub's own code: exclusive_bytes is its
    expected_freed_size for deleting that repo alone, total_bytes is what removing every repo gives back."""
    from ansible_collections.residue.purge.tests.unit.support import hfshared

    cache = str(sandbox / "hub")
    repos = hfgen.make_cache(cache, repos=5, revisions_per_repo=2, files_per_revision=6, seed=11)
    hfshared.share(cache, repos, payloads=5, fraction=0.7, seed=11)
    home = sandbox / "emptyhome"
    home.mkdir()
    result = module_runner("discover", {"targets": ["huggingface"], "homes": [str(home)], "scan_processes": False,
                                        "extra_hf_caches": [cache]})
    assert not result.get("failed"), result.get("msg")
    assert ours(result) == hf_oracle(cache)  # blob_bytes stays huggingface_hub's size_on_disk
    info = scan_cache_dir(cache)
    by_path = dict((str(r.repo_path), r) for r in info.repos)
    shared_somewhere = 0
    for r in result["residues"]:
        repo = by_path[r["path"]]
        alone = info.delete_revisions(*[rev.commit_hash for rev in repo.revisions]).expected_freed_size
        assert r["exclusive_bytes"] == alone, r["repo_id"]
        shared_somewhere += r["exclusive_bytes"] < r["blob_bytes"]
    assert shared_somewhere  # the cache does share payloads between repos
    (entry,) = [c for c in result["hf_caches"] if c["path"] == os.path.realpath(cache)]
    payloads = [os.path.join(d, f) for d, _s, fs in os.walk(os.path.join(cache, "blobs")) for f in fs if len(f) == 64]
    assert payloads and entry["store_bytes"] == sum(os.lstat(p).st_blocks * 512 for p in payloads)
    # every repo goes: the file system gives back the repo dirs and every payload
    assert result["total_bytes"] == sum(du(r["path"]) for r in result["residues"]) + entry["store_bytes"]
