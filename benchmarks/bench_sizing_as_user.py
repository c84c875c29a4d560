"""discover's sizing of a user's residue in a child dropped to that user (docs/trust.md rule 4) against the same
walk in root's own process, on a 20,000-file tree owned by the user; `du -sB1` (run as root) as the peer. Also
remove's check-mode plan in the user's child with and without predicting the kernel's refusals (predict opens
each regular file once for its inode flags).

The cost of the trust boundary is one fork, the drop (setgroups/setresgid/setresuid, verified) and the result
crossing a pipe as plain data, once per user per run: it does not grow with the number of files. Needs root (it
drops to `nobody`); page cache warm (one untimed pass of each first). Reproduce:
`sudo .venv/bin/python benchmarks/run.py sizing_as_user`.
"""
import os
import pwd
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))

from ansible_collections.residue.purge.plugins.module_utils import _discover, _paths, _privileges, _walk  # noqa: E402

DIRS, FILES = 20, 1000  # 20,000 files in 21 directories
ROUNDS = int(os.environ.get("BENCH_SIZING_ROUNDS", "9"))
USER = os.environ.get("BENCH_SIZING_USER", "nobody")


def build(root, uid, gid):
    os.makedirs(root)
    for a in range(DIRS):
        d = os.path.join(root, "d%d" % a)
        os.mkdir(d)
        for c in range(FILES):
            name = os.path.join(d, "f%d" % c)
            with open(name, "wb") as f:
                f.write(b"x" * ((a * 131 + c * 37) % 9000))
            os.lchown(name, uid, gid)
        os.lchown(d, uid, gid)
    os.lchown(root, uid, gid)


def size(path, actor):
    """What discover does per group: root opens the parent (O_NOFOLLOW chain), the actor's process walks."""
    fd, name = _paths.open_parent(path)
    try:
        start = time.perf_counter()
        out = _privileges.call_as(actor, _discover._size_paths, [(path, fd, name)], True, False)
        return time.perf_counter() - start, out[0][1]
    finally:
        os.close(fd)


def plan(path, actor, predict):
    """remove's check-mode planning walk of path in actor's process (dry run; predict: the kernel's refusals)."""
    fd, name = _paths.open_parent(path)
    try:
        start = time.perf_counter()
        out = _privileges.call_as(actor, _plan_work, fd, name, path, predict)
        return time.perf_counter() - start, out
    finally:
        os.close(fd)


def _plan_work(fd, name, path, predict):
    return _walk.remove_at(fd, name, path, dry_run=True, predict=predict).to_dict()


def du(path):
    start = time.perf_counter()
    out = subprocess.run(["du", "-sB1", path], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, int(out.split()[0])


def run(workdir):
    if os.geteuid() != 0:
        return ("## sizing_as_user\n\nNot measured: needs root (it drops to %s). Run "
                "`sudo .venv/bin/python benchmarks/run.py sizing_as_user`.\n" % USER)
    entry = pwd.getpwnam(USER)
    user = _privileges._User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    root = _privileges.root_user()
    tree = os.path.join(workdir, "tree")
    build(tree, entry.pw_uid, entry.pw_gid)
    size(tree, root), size(tree, user), du(tree)  # warm the page cache
    plan(tree, user, False), plan(tree, user, True)
    as_root, as_user, peer, dry, predicted = [], [], [], [], []
    for _round in range(ROUNDS):
        dry.append(plan(tree, user, False)[0])
        t, planned = plan(tree, user, True)
        predicted.append(t)
        t, r = size(tree, root)
        as_root.append(t)
        t, u = size(tree, user)
        as_user.append(t)
        t, d = du(tree)
        peer.append(t)
    assert r["bytes"] == u["bytes"] == d and r["files"] == u["files"] == DIRS * FILES, (r, u, d)
    assert not u["problems"], u["problems"]
    assert planned["files"] == DIRS * FILES, planned
    mr, mu, md, mp, mq = (statistics.median(x) for x in (as_root, as_user, peer, dry, predicted))
    return "\n".join([
        "## sizing_as_user",
        "",
        "discover sizing a user's %d-file residue (%d bytes as `du -sB1` counts them) in a child dropped to `%s` "
        "vs in root's own process; median of %d rounds, page cache warm." % (DIRS * FILES, d, USER, ROUNDS),
        "",
        "| walk | median s | vs root's process | vs du |",
        "|---|---|---|---|",
        "| root's process (_walk.usage_at) | %.4f | 1.00x | %.2fx |" % (mr, mr / md),
        "| child dropped to %s (call_as) | %.4f | %.2fx | %.2fx |" % (USER, mu, mu / mr, mu / md),
        "| du -sB1 (root) | %.4f | %.2fx | 1.00x |" % (md, md / mr),
        "",
        "Extra cost of the dropped child: %.1f ms per user per run (fork, drop, plain-data result), whatever the "
        "file count." % ((mu - mr) * 1000),
        "",
        "remove's check-mode plan of the same tree in the child dropped to `%s`: dry run %.4f s, with the "
        "kernel's refusals predicted (check mode) %.4f s (%.2fx: one open and FS_IOC_GETFLAGS per regular file; "
        "real runs plan without it)." % (USER, mp, mq, mq / mp),
        "",
        "Reproduce: `sudo .venv/bin/python benchmarks/run.py sizing_as_user`.",
        "",
    ])
