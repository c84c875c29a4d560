"""_privileges: work runs with a user's rights in a child that cannot get root back; results are plain data."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import signal
import subprocess
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _fork, _platform, _privileges
from ansible_collections.residue.purge.plugins.module_utils._privileges import (
    ChildFailed, NotReachable, call_as, credentials, dropper, root_user, stream_as)

_NOBODY = pwd.getpwnam("nobody")
NOBODY = _privileges.User(_NOBODY.pw_name, _NOBODY.pw_uid, _NOBODY.pw_gid, _NOBODY.pw_dir)


@pytest.fixture(autouse=True)
def need_root():
    if os.geteuid() != 0:
        pytest.fail("these tests switch users and need root (the lab runs as root)")


def ids():
    return os.getresuid(), os.getresgid(), sorted(os.getgroups())


def test_the_child_has_exactly_the_users_ids_and_groups():
    creds = credentials(NOBODY)
    assert creds.groups == tuple(sorted(set(os.getgrouplist("nobody", _NOBODY.pw_gid))))
    got = call_as(NOBODY, ids)
    assert got == ((NOBODY.uid,) * 3, (_NOBODY.pw_gid,) * 3, sorted(creds.groups))
    assert os.geteuid() == 0  # the parent is untouched


def test_no_way_back_and_the_kernel_refuses_what_the_user_cannot_do(tmp_path):
    def try_root():
        os.setuid(0)

    with pytest.raises(ChildFailed, match="PermissionError"):
        call_as(NOBODY, try_root)
    os.chmod(str(tmp_path), 0o755)
    victim = tmp_path / "root-file"
    victim.write_text("root's")
    with pytest.raises(ChildFailed, match="as nobody: PermissionError"):
        call_as(NOBODY, os.unlink, str(victim))
    assert victim.read_text() == "root's"


def test_root_and_self_run_in_this_process():
    assert call_as(root_user(), os.getpid) == os.getpid()


def test_a_killed_or_stopped_child_fails_and_is_never_redone_as_root(monkeypatch, tmp_path):
    marker = str(tmp_path / "ran-as-root")

    def killed():
        if os.geteuid() == 0:
            open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(ChildFailed, match="ended without a result"):
        call_as(NOBODY, killed)
    monkeypatch.setattr(_fork, "STALL_CHECK_SECONDS", 0.2)
    with pytest.raises(ChildFailed, match="ended without a result"):
        call_as(NOBODY, lambda: os.kill(os.getpid(), signal.SIGSTOP))
    assert not os.path.exists(marker)


class Gadget(object):
    def __reduce__(self):
        return (os.system, ("true",))


def test_only_plain_data_comes_back():
    assert call_as(NOBODY, lambda: {"a": [1, (2, b"x")], "s": {3}, "n": None}) == \
        {"a": [1, (2, b"x")], "s": {3}, "n": None}
    with pytest.raises(ChildFailed, match="ended without a result"):
        call_as(NOBODY, Gadget)


def test_an_unprivileged_process_reaches_only_its_own_user():
    def inside():
        try:
            call_as(root_user(), os.getpid)
        except NotReachable as exc:
            return str(exc)
        return "reached"

    assert "not reachable without root" in call_as(NOBODY, inside)
    assert call_as(NOBODY, lambda: call_as(NOBODY, os.geteuid)) == NOBODY.uid


def test_dropper_runs_a_program_as_the_user():
    out = subprocess.run(["id", "-u"], preexec_fn=dropper(NOBODY), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(NOBODY.uid)
    assert dropper(root_user()) is None


def test_stream_as_passes_messages_in_order_and_fails_loudly():
    big = os.urandom(3 * 1024 * 1024)

    def produce(send):
        send(("uid", os.geteuid()))
        for i in range(0, len(big), 1 << 20):
            send(("data", big[i:i + (1 << 20)]))

    messages = list(stream_as(NOBODY, produce))
    assert messages[0] == ("uid", NOBODY.uid)
    assert b"".join(m[1] for m in messages[1:]) == big

    def broken(send):
        send(("first", 1))
        raise RuntimeError("boom")

    got = []
    with pytest.raises(ChildFailed, match="as nobody: RuntimeError: boom"):
        for message in stream_as(NOBODY, broken):
            got.append(message)
    assert got == [("first", 1)]

    def dies(send):
        send(("first", 1))
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(ChildFailed, match="ended before it was done"):
        list(stream_as(NOBODY, dies))


def _in_child(work):
    handle = _fork.fork_call(work)
    return _fork.fork_result(handle)


def test_the_portable_drop_macos_uses_holds_and_has_no_way_back(tmp_path):
    """drop_portable (setgroups, setgid, setuid: what macOS has) run for real here, in a child."""
    creds = credentials(NOBODY)

    def dropped():
        _privileges.drop_portable(creds)
        refused = []
        for regain in (lambda: os.seteuid(0), lambda: os.setuid(0), lambda: os.setgid(0)):
            try:
                regain()
            except PermissionError:
                refused.append(True)
        return ids(), refused

    got, refused = _in_child(dropped)
    assert got == ((NOBODY.uid,) * 3, (_NOBODY.pw_gid,) * 3, sorted(creds.groups))
    assert refused == [True, True, True]
    victim = tmp_path / "root-file"
    victim.write_text("root's")
    os.chmod(str(tmp_path), 0o755)

    def unlink():
        _privileges.drop_portable(creds)
        try:
            os.unlink(str(victim))
        except PermissionError:
            return "refused"
        return "removed"

    assert _in_child(unlink) == "refused"
    assert victim.read_text() == "root's"


def test_the_portable_drop_trims_groups_only_where_the_kernel_refuses_them():
    many = _privileges.Credentials(NOBODY.uid, _NOBODY.pw_gid, tuple(range(70000, 70020)) + (_NOBODY.pw_gid,),
                                   "nobody")

    def dropped():
        _privileges.drop_portable(many)
        return sorted(os.getgroups())

    assert _in_child(dropped) == sorted(set(many.groups))  # Linux takes 21 groups: nothing trimmed


def test_a_stopped_child_is_seen_without_proc_as_on_macos():
    """macOS has no /proc: _fork asks `ps -o stat=` (the same command answers here, for real)."""
    child = subprocess.Popen(["sleep", "300"])
    previous = _platform.use(_platform.Host(_platform.DARWIN, _platform.current().run))
    try:
        assert _fork._stopped(child.pid) is False
        os.kill(child.pid, signal.SIGSTOP)
        for _attempt in range(50):
            if _fork._stopped(child.pid):
                break
            time.sleep(0.1)
        assert _fork._stopped(child.pid) is True
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.2)
        assert _fork._stopped(child.pid) is False
    finally:
        _platform.use(previous)
        child.kill()
        child.wait()
    assert _fork._stopped(child.pid) is False  # gone
