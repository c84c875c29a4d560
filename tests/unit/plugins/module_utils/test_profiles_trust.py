"""Environment values are evidence, not authority (issue 10, item 2).

Real files owned by real (numeric) uids and real processes running as those uids with hostile environments;
needs root, as the module does on a shared host."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _profiles as P

BOB_UID, CAROL_UID = 47101, 47102  # no passwd entries needed: ownership is what counts


@pytest.fixture(autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.fail("these tests create files owned by other users and run processes as them: run as root")


def owned(path, uid, mode=0o755, kind="dir"):
    if kind == "dir":
        os.makedirs(path, exist_ok=True)
    else:
        with open(path, "w") as f:
            f.write("x")
    os.chmod(path, mode)
    os.lchown(path, uid, uid)
    return path


@pytest.fixture
def host(tmp_path):
    """/tmp/.../home/{bob,carol} owned by them, a root-owned /tmp/.../srv with a bob-owned dir in it."""
    os.chmod(str(tmp_path), 0o755)
    top = str(tmp_path)
    bob = P.User("bob", BOB_UID, BOB_UID, owned(os.path.join(top, "home", "bob"), BOB_UID))
    carol = P.User("carol", CAROL_UID, CAROL_UID, owned(os.path.join(top, "home", "carol"), CAROL_UID))
    owned(os.path.join(carol.home, ".cache"), CAROL_UID)
    owned(os.path.join(carol.home, ".cache", "open-autoglm"), CAROL_UID)
    os.makedirs(os.path.join(top, "srv", "shared"))
    owned(os.path.join(top, "srv", "bobdata"), BOB_UID)
    return {"top": top, "bob": bob, "carol": carol}


def vet(user, value, name="XDG_CACHE_HOME"):
    return P.vet_value(user, name, value, P._own_home_identity(user))


def test_a_value_in_the_users_own_home_is_used_as_its_location(host):
    bob = host["bob"]
    assert vet(bob, bob.home + "/.cache") == (bob.home + "/.cache", None)  # need not exist yet
    assert vet(bob, "~/hf", "HF_HOME") == (bob.home + "/hf", None)
    assert vet(bob, bob.home) == (bob.home, None)
    assert vet(bob, "/" + bob.home + "//./x/") == (bob.home + "/x", None)  # spelling collapsed


def test_a_value_the_user_owns_outside_the_home_is_used_and_one_they_do_not_is_not(host):
    bob, top = host["bob"], host["top"]
    assert vet(bob, top + "/srv/bobdata") == (top + "/srv/bobdata", None)
    assert vet(bob, top + "/srv/bobdata/new/deeper") == (top + "/srv/bobdata/new/deeper", None)
    path, why = vet(bob, top + "/srv/shared")
    assert path is None and "%s/srv/shared is owned by root, not by bob" % top in why
    path, why = vet(bob, top + "/srv/shared/not-yet")  # would be created in root's directory
    assert path is None and "does not exist and %s/srv/shared is owned by root" % top in why


@pytest.mark.parametrize("value", ["/etc", "//etc", "/usr/share/zoneinfo", "/var/lib", "/root", "/root/.cache",
                                   "/usr/share/doc/", "///usr//share/./doc", "/etc/nonexistent-residue"])
def test_system_locations_are_refused_for_a_user_in_every_spelling(host, value):
    path, why = vet(host["bob"], value, "MODELSCOPE_CACHE")
    assert path is None
    assert "owned by root, not by bob" in why


def test_another_users_home_is_refused(host):
    bob, carol = host["bob"], host["carol"]
    for value in (carol.home, carol.home + "/.cache", carol.home + "/.cache/open-autoglm", carol.home + "/new"):
        path, why = vet(bob, value, "TMPDIR")
        assert path is None and "owned by %d, not by bob" % CAROL_UID in why, value


def test_a_symlink_the_user_made_is_not_followed(host):
    bob = host["bob"]
    os.symlink("/etc", bob.home + "/etc-link")
    os.lchown(bob.home + "/etc-link", BOB_UID, BOB_UID)
    path, why = vet(bob, bob.home + "/etc-link/x")
    assert path is None and "etc-link is a symlink owned by" in why and "not followed" in why
    # bob's own symlink to his own data is refused too: the location is not checked through a link he controls
    os.symlink(host["top"] + "/srv/bobdata", bob.home + "/data")
    os.lchown(bob.home + "/data", BOB_UID, BOB_UID)
    assert vet(bob, bob.home + "/data")[0] is None


def test_a_root_symlink_is_followed_and_the_location_it_leads_to_is_what_is_checked(host):
    bob, top = host["bob"], host["top"]
    os.symlink("/etc", bob.home + "/root-made")  # root-owned (we are root): the system's own layout
    path, why = vet(bob, bob.home + "/root-made")
    assert path is None and "/etc is owned by root" in why
    os.symlink(top + "/srv/bobdata", top + "/srv/link-to-bob")
    assert vet(bob, top + "/srv/link-to-bob/hf") == (top + "/srv/bobdata/hf", None)


def test_a_service_account_whose_home_is_roots_has_no_home_rule(host):
    svc = P.User("svc", BOB_UID, BOB_UID, host["top"] + "/srv/shared")  # passwd home owned by root
    assert P._own_home_identity(svc) is None
    assert vet(svc, host["top"] + "/srv/shared/cache")[0] is None
    nobody = P.User("nobody", BOB_UID, BOB_UID, "/")
    assert P._own_home_identity(nobody) is None
    assert vet(nobody, "/etc")[0] is None


def test_root_may_name_what_root_owns():
    root = P.User("root", 0, 0, "/root")
    assert vet(root, "/root/.cache") == ("/root/.cache", None)
    assert vet(root, "/var/lib/hf", "HF_HOME") == ("/var/lib/hf", None)


def test_relative_values_name_nothing_and_are_not_reported(host):
    problems = []
    assert P.vet_environment(host["bob"], {"TMPDIR": "tmp", "HF_HOME": ""}, "x", problems) == {}
    assert problems == []


def spawn(uid, env, ruid_only=False):
    """A real process of uid with env; with ruid_only a setuid-like one (real uid `uid`, effective root)."""
    def drop():
        if ruid_only:
            os.setresuid(uid, 0, 0)
        else:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
    proc = subprocess.Popen(["/bin/sleep", "60"], env=env, preexec_fn=drop)
    deadline = time.time() + 10
    while time.time() < deadline:  # until exec has replaced the forked child's environment
        try:
            with open("/proc/%d/environ" % proc.pid, "rb") as f:
                if b"\0".join(("%s=%s" % kv).encode() for kv in sorted(env.items())) in f.read():
                    break
        except OSError:
            pass
        time.sleep(0.02)
    return proc


def test_process_environments_apply_only_to_their_user_and_only_to_what_that_user_owns(host):
    bob, carol, top = host["bob"], host["carol"], host["top"]
    hostile = {"XDG_CACHE_HOME": "/etc", "HF_HOME": "/usr/share", "MODELSCOPE_CACHE": "//var/lib",
               "PIP_CACHE_DIR": "/root/.cache/pip", "TMPDIR": carol.home + "/.cache/open-autoglm",
               "TORCH_HOME": top + "/srv/bobdata/torch", "PATH": "/usr/bin:/bin"}
    proc = spawn(BOB_UID, hostile)
    try:
        problems = []
        contexts = P.user_environments([bob, carol], environ={}, environment_file="/nonexistent",
                                       problems=problems)
    finally:
        proc.kill()
        proc.wait()
    mine = [c for c in contexts if c.source == "process %d" % proc.pid]
    assert len(mine) == 1 and mine[0].user == bob
    assert mine[0].environ == {"TORCH_HOME": top + "/srv/bobdata/torch"}
    texts = [p for p in problems if "process %d " % proc.pid in p]
    for name in ("XDG_CACHE_HOME", "HF_HOME", "MODELSCOPE_CACHE", "PIP_CACHE_DIR", "TMPDIR"):
        text = next(p for p in texts if "%s=%s is not used" % (name, hostile[name]) in p)
        assert text.startswith("environment of process %d (user bob): " % proc.pid), text
    assert not any("TORCH_HOME" in p for p in texts)


def test_a_setuid_process_does_not_lend_its_users_environment_roots_authority(host):
    proc = spawn(BOB_UID, {"MODELSCOPE_CACHE": "/usr/share/zoneinfo", "TMPDIR": "/etc"}, ruid_only=True)
    try:
        problems = []
        contexts = P.user_environments([host["bob"]], environ={}, environment_file="/nonexistent",
                                       problems=problems)
    finally:
        proc.kill()
        proc.wait()
    assert not any(c.source == "process %d" % proc.pid for c in contexts)
    assert any(p.startswith("environment of process %d (real uid %d, effective uid 0) is not used"
                            % (proc.pid, BOB_UID)) for p in problems), problems


def test_etc_environment_is_checked_per_user(host, tmp_path):
    bob, carol, top = host["bob"], host["carol"], host["top"]
    envfile = tmp_path / "environment"
    envfile.write_text("HF_HOME=%s/srv/bobdata/hf\nXDG_CACHE_HOME=/var/cache\n" % top)
    problems = []
    contexts = P.user_environments([bob, carol], scan_processes=False, environ={}, environment_file=str(envfile),
                                   problems=problems)
    files = dict((c.user.name, c.environ) for c in contexts if c.source.startswith("file:"))
    assert files == {"bob": {"HF_HOME": top + "/srv/bobdata/hf"}}
    assert problems == [
        "%s: HF_HOME=%s/srv/bobdata/hf is not used for carol: %s/srv/bobdata/hf does not exist and "
        "%s/srv/bobdata is owned by %d, not by them, and is not in their home" % (envfile, top, top, top, BOB_UID),
        "%s: XDG_CACHE_HOME=/var/cache is not used for bob, carol: /var/cache is owned by root, not by them, and "
        "is not in their home" % envfile]


def test_the_modules_own_environment_is_its_users_alone(host):
    root = P.User("root", 0, 0, "/root")
    contexts = P.user_environments([host["bob"], root], scan_processes=False, environ={"HF_HOME": "/srv/hf"},
                                   environment_file="/nonexistent")
    assert [(c.user.name, c.environ) for c in contexts if c.source == "env"] == [("root", {"HF_HOME": "/srv/hf"})]


def test_one_users_environment_neither_protects_nor_blocks_another_users_residue(host):
    """The denial of service: bob's TMPDIR naming carol's residue (here a directory bob owns inside it, so that
    the ownership rule lets it through) made every purge fail with 'contains the protected directory'."""
    bob, carol = host["bob"], host["carol"]
    inside = owned(carol.home + "/.cache/open-autoglm/bob-was-here", BOB_UID)
    users = [bob, carol]
    contexts = [P.EnvContext(u, {}, "default") for u in users] + [
        P.EnvContext(bob, {"TMPDIR": inside}, "process 4242"),
        P.EnvContext(bob, {"MODELSCOPE_CACHE": bob.home}, "process 4243")]
    profiles = P.load_profiles()
    problems = []
    found = P.resolve_all({"open_autoglm": profiles["open_autoglm"], "modelscope": profiles["modelscope"]},
                          users, contexts, problems, system="Linux")
    paths = [r.path for r in found]
    assert carol.home + "/.cache/open-autoglm" in paths
    assert inside not in P.protected_paths(users, contexts, "Linux", user=carol)
    assert inside in P.protected_paths(users, contexts, "Linux", user=bob)
    # bob's MODELSCOPE_CACHE=$HOME would make the modelscope profile remove his home: left out, said so, the
    # rest resolved
    assert bob.home not in paths and bob.home + "/.cache/modelscope" in paths
    assert any(p.startswith("environment of process 4243 (user bob): profile 'modelscope' field paths[0]")
               and "is a protected directory" in p for p in problems), problems


def test_a_bad_profile_still_fails_before_anything_happens(host):
    users = [host["bob"]]
    contexts = [P.EnvContext(u, {}, "default") for u in users]
    bad = P.load_profiles({"bad": {"paths": ["{user_cache}"]}})
    with pytest.raises(P.ProfileError, match="protected directory"):
        P.resolve_all({"bad": bad["bad"]}, users, contexts, [], system="Linux")


def test_a_users_config_symlink_to_a_root_directory_resolves_nothing(host):
    """bob's own ~/.config -> /etc: {user_config}/open-autoglm would be /etc/open-autoglm. Left out and said so
    (naming the link and its owner), in the default context too, without failing the others' residues."""
    bob, carol = host["bob"], host["carol"]
    os.symlink("/etc", bob.home + "/.config")
    os.lchown(bob.home + "/.config", BOB_UID, BOB_UID)
    users = [bob, carol]
    contexts = [P.EnvContext(u, {}, "default") for u in users]
    problems = []
    found = P.resolve_all({"open_autoglm": P.load_profiles()["open_autoglm"]}, users, contexts, problems,
                          system="Linux")
    paths = [r.path for r in found]
    assert bob.home + "/.config/open-autoglm" not in paths
    assert bob.home + "/.cache/open-autoglm" in paths and carol.home + "/.config/open-autoglm" in paths
    assert problems == ["defaults of user bob: profile 'open_autoglm' field paths[1] ({user_config}/open-autoglm): "
                        "'%s/.config/open-autoglm': %s/.config is a symlink owned by %d (uid %d), not by root; it "
                        "is not followed; left out" % (bob.home, bob.home, BOB_UID, BOB_UID)]


def test_a_dotdot_in_a_value_is_refused_not_resolved(host):
    bob = host["bob"]
    assert vet(bob, bob.home + "/x/..") == (None, "'%s/x/..' must not contain '..'" % bob.home)
    assert vet(bob, "~/../carol")[0] is None


def test_model_stores_found_from_environments_are_vetted_too(host):
    """ollama_models and modelscope_models find stores from environments: mallory-style values there are
    refused and reported, and bob's MODELSCOPE_CACHE=$HOME (a protected directory) no longer fails the task."""
    from ansible_collections.residue.purge.plugins.module_utils import _modelscope, _ollama
    bob, carol, top = host["bob"], host["carol"], host["top"]
    owned(top + "/srv/bobdata/ollama", BOB_UID)
    os.makedirs(top + "/srv/shared/ollama", exist_ok=True)
    params = {"homes": [bob.home, carol.home], "users": "all", "profiles": {}, "discover": True,
              "scan_processes": True}
    procs = [spawn(BOB_UID, {"OLLAMA_MODELS": top + "/srv/shared/ollama", "TMPDIR": "/tmp"}),
             spawn(BOB_UID, {"OLLAMA_MODELS": top + "/srv/bobdata/ollama", "TMPDIR": "/tmp"}),
             spawn(BOB_UID, {"MODELSCOPE_CACHE": bob.home, "TMPDIR": "/tmp"})]
    try:
        ollama_problems, modelscope_problems = [], []
        stores = [p for p, _u, _s in _ollama.store_locations(dict(params, models_dirs=[]), ollama_problems)]
        _modelscope.cache_locations(dict(params, cache_dirs=[]), modelscope_problems)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert top + "/srv/bobdata/ollama" in stores and top + "/srv/shared/ollama" not in stores
    assert any("environment of process %d (user %d): OLLAMA_MODELS=%s/srv/shared/ollama is not used: "
               % (procs[0].pid, BOB_UID, top) in p for p in ollama_problems), ollama_problems
    assert any("environment of process %d (user %d): profile 'modelscope'" % (procs[2].pid, BOB_UID) in p
               and "is a protected directory" in p for p in modelscope_problems), modelscope_problems


def test_a_hub_cache_root_counts_where_it_really_is(host):
    """A user may move their HF cache with a symlink to their own data; a symlink to root's cache (a system
    hub in /srv) is refused: discover used to list, and the purge to empty, whatever the link pointed at."""
    bob, top = host["bob"], host["top"]
    owned(bob.home + "/.cache", BOB_UID)
    owned(top + "/srv/bobdata/hf", BOB_UID)
    os.makedirs(top + "/srv/shared/hub", exist_ok=True)
    os.symlink(top + "/srv/bobdata/hf", bob.home + "/.cache/huggingface")
    os.lchown(bob.home + "/.cache/huggingface", BOB_UID, BOB_UID)
    assert P.vet_location(bob, bob.home + "/.cache/huggingface") == (top + "/srv/bobdata/hf", None)
    os.symlink(top + "/srv/shared/hub", bob.home + "/.cache/hub-link")
    os.lchown(bob.home + "/.cache/hub-link", BOB_UID, BOB_UID)
    why = ("%s/.cache/hub-link is %s/srv/shared/hub: %s/srv/shared/hub is owned by root, not by bob, and is not in "
           "bob's home" % (bob.home, top, top))
    assert P.vet_location(bob, bob.home + "/.cache/hub-link") == (None, why)
    assert P.vet_location(bob, bob.home + "/.cache") == (bob.home + "/.cache", None)


def test_the_host_budget_finds_stores_under_the_same_rules(host):
    """model_budget (the prune playbook's host budget) gathers HF, Ollama, ModelScope and torch stores: a user's
    symlink to root's hub cache and a user's TORCH_HOME on root's directory are reported, not budgeted."""
    from ansible_collections.residue.purge.plugins.module_utils import _budget
    bob, carol, top = host["bob"], host["carol"], host["top"]
    owned(bob.home + "/.cache", BOB_UID)
    os.makedirs(top + "/srv/shared/hub/models--x--y/snapshots")
    os.makedirs(top + "/srv/shared/torch/hub")
    os.symlink(top + "/srv/shared", bob.home + "/.cache/huggingface")
    os.lchown(bob.home + "/.cache/huggingface", BOB_UID, BOB_UID)
    proc = spawn(BOB_UID, {"TORCH_HOME": top + "/srv/shared/torch", "TMPDIR": "/tmp"})
    try:
        problems = []
        hf, _ollama, _modelscope, torch = _budget._locations(  # pylint: disable=protected-access
            {"homes": [bob.home, carol.home], "users": "all", "scan_processes": True, "profiles": {}}, problems)
    finally:
        proc.kill()
        proc.wait()
    assert top + "/srv/shared/hub" not in hf and top + "/srv/shared/torch/hub" not in torch
    text = "\n".join(problems)
    assert "HF hub cache of user %d (default) is not used: %s/.cache/huggingface/hub is %s/srv/shared/hub" % (
        BOB_UID, bob.home, top) in text, text
    assert "environment of process %d (user %d): TORCH_HOME=%s/srv/shared/torch is not used" % (
        proc.pid, BOB_UID, top) in text, text
