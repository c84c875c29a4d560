# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ollama_models and modelscope_models as root on a shared host: a store in a user's home is sized and emptied with
that user's rights (real throwaway users, real files, real bind mounts), so root-owned files planted in it, a bind
mount of a root directory and a store that is the user's link to root's stay whole; a child the user kills fails
only that user's store. Each test was run against the code before this rule (root removed everything) and failed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import subprocess
import threading
import time

from ansible_collections.residue.purge.plugins.module_utils import _modelscope, _ollama
from ansible_collections.residue.purge.tests.unit.support import ollamagen as og
from ansible_collections.residue.purge.tests.unit.support import realusers
from ansible_collections.residue.purge.tests.unit.support.realusers import as_user, chown_tree, digest, write

# the shared fixtures (need_root is autouse)
make_user = realusers.make_user
need_root = realusers.need_root
sandbox = realusers.sandbox


def ollama_params(stores, users, **kw):
    p = {"models_dirs": list(stores), "discover": False, "models": ["*"], "keep": [], "older_than": None,
         "max_size": None, "orphans": False, "orphans_older_than": "1d", "force": False, "homes": [],
         "users": [u.pw_name for u in users], "scan_processes": False}
    p.update(kw)
    return p


def ms_params(caches, users, **kw):
    p = {"cache_dirs": list(caches), "discover": False, "models": ["*"], "keep": [], "older_than": None,
         "max_size": None, "incomplete_older_than": "1d", "force": False, "one_file_system": True, "homes": [],
         "users": [u.pw_name for u in users], "scan_processes": False}
    p.update(kw)
    return p


def users_store(user, models=(("mine:1b", b"M" * 3000),)):
    store = os.path.join(user.pw_dir, ".ollama", "models")
    for name, weights in models:
        og.model(store, name, [b"cfg-" + name.encode(), weights])
    chown_tree(user, os.path.join(user.pw_dir, ".ollama"))
    return store


def start_killer(user, sandbox):
    """A process of user's that SIGKILLs every other process of user's (the child acting as them among them)
    until the test says stop."""
    stop = os.path.join(sandbox, "stop-killer")
    killer = ("import os, time\n"
              "while not os.path.exists(%r):\n"
              "    for pid in os.listdir('/proc'):\n"
              "        if pid.isdigit() and int(pid) != os.getpid():\n"
              "            try:\n"
              "                if os.stat('/proc/' + pid).st_uid == os.getuid():\n"
              "                    os.kill(int(pid), 9)\n"
              "            except OSError:\n"
              "                pass\n" % stop)
    proc = subprocess.Popen(["runuser", "-u", user.pw_name, "--", "python3", "-c", killer], cwd="/")
    time.sleep(1)
    return proc


def stop_killer(proc, sandbox):
    write(os.path.join(sandbox, "stop-killer"), "")
    proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ ollama

def test_ollama_a_root_owned_manifest_dir_in_a_users_store_stays_and_is_named(make_user):
    """Root's directory planted in alice's store (alice cannot write it): alice's own model goes with alice's
    rights, root's manifest fails with Permission denied and stays, and so do its layers."""
    alice = make_user()
    store = users_store(alice)
    og.model(store, "rootmodel:1b", [b"cfg-root", b"R" * 2000])  # made by root: its dirs and manifest are root's
    rootdir = os.path.join(store, "manifests", "registry.ollama.ai", "library", "rootmodel")
    assert os.stat(rootdir).st_uid == 0
    before = digest(rootdir)
    result = _ollama.run(ollama_params([store], [alice]))
    assert digest(rootdir) == before
    assert [f for f in result["failures"] if "rootmodel" in f] == [os.path.join(rootdir, "1b") + ": Permission denied"]
    assert [r["name"] for r in result["removed"]] == ["mine:1b"] and result.get("failure")
    assert og.blob_names(store) == sorted("sha256-" + hashlib.sha256(c).hexdigest() for c in (b"cfg-root", b"R" * 2000))


def test_ollama_a_bind_mount_of_a_root_directory_as_blobs_is_not_emptied(make_user, sandbox):
    """root bind-mounted a root directory (a shared layer cache, say) as alice's blobs/: alice's manifests go,
    the layers in root's directory stay (alice cannot unlink them) and are named."""
    alice = make_user()
    store = users_store(alice)
    shared = os.path.join(sandbox, "srv-layers")
    os.makedirs(shared)
    for name in og.blob_names(store):
        os.rename(os.path.join(store, "blobs", name), os.path.join(shared, name))  # root's now
    for name in os.listdir(shared):
        os.chown(os.path.join(shared, name), 0, 0)
    before = digest(shared)
    subprocess.run(["mount", "--bind", shared, os.path.join(store, "blobs")], check=True)
    try:
        result = _ollama.run(ollama_params([store], [alice]))
        assert digest(shared) == before
    finally:
        subprocess.run(["umount", os.path.join(store, "blobs")], check=True)
    assert digest(shared) == before
    assert len(result["failures"]) == 2 and all(f.endswith("Permission denied") for f in result["failures"])
    assert not os.path.exists(os.path.join(store, "manifests", "registry.ollama.ai"))  # alice's manifest went


def test_ollama_a_users_store_that_is_a_link_to_roots_store_is_acted_on_as_the_user(make_user, sandbox):
    """alice's ~/.ollama/models is her symlink to the service's store (root's): named as a models dir, it is
    opened through the link, but as alice, so the kernel refuses every removal in root's store."""
    alice = make_user()
    service = os.path.join(sandbox, "usr-share-ollama", "models")
    og.model(service, "served:7b", [b"cfg-served", b"S" * 4000])
    before = digest(service)
    as_user(alice, "mkdir", "-p", os.path.join(alice.pw_dir, ".ollama"))
    link = os.path.join(alice.pw_dir, ".ollama", "models")
    as_user(alice, "ln", "-s", service, link)
    result = _ollama.run(ollama_params([link], [alice]))
    assert digest(service) == before
    assert result["removed"] == [] and result["failures"] and "Permission denied" in result["failures"][0]
    # the same store named where it really is (outside every home) is root's: the test can tell the two apart
    check = _ollama.run(ollama_params([service], [alice]), check_mode=True)
    assert [r["name"] for r in check["removed"]] == ["served:7b"]


def test_ollama_a_child_the_user_kills_fails_only_that_users_store(make_user, sandbox):
    """alice kills every process of hers (the child acting as her is one): her store fails, named, and nothing
    of it is done by root instead; bob's store goes with bob's rights."""
    alice, bob = make_user(), make_user()
    many = [("m%d:1b" % i, b"W%d" % i * 200) for i in range(600)]
    alice_store, bob_store = users_store(alice, many), users_store(bob)
    proc = start_killer(alice, sandbox)
    try:
        result = _ollama.run(ollama_params([alice_store, bob_store], [alice, bob]))
    finally:
        stop_killer(proc, sandbox)
    assert [r["store"] for r in result["removed"]] == [bob_store]
    assert not os.path.exists(os.path.join(bob_store, "manifests", "registry.ollama.ai"))
    (failed,) = result["failures"]
    assert failed.startswith(alice_store + ": ") and alice.pw_name in failed, failed
    assert os.listdir(os.path.join(alice_store, "manifests", "registry.ollama.ai", "library"))  # root did not redo it


# ollama: reading and sizing as the store's user (the code before read every store as root: manifests parsed and
# layers stat'ed with root's rights, only the removal ran as the user)

def test_ollama_a_users_store_linked_into_another_users_home_is_read_as_her(make_user):
    """alice's ~/.ollama/models is her link to bob's store in bob's 0700 home. Read as alice, the store cannot be
    opened: bob's model is neither listed nor planned in alice's run, and nothing of bob's changes. (Root read it:
    bob's model names and sizes were listed and planned for removal in alice's run.)"""
    alice, bob = make_user(), make_user()
    bob_store = users_store(bob, (("secret:7b", b"S" * 5000),))
    os.chmod(bob.pw_dir, 0o700)
    before = digest(bob_store)
    as_user(alice, "mkdir", "-p", os.path.join(alice.pw_dir, ".ollama"))
    link = os.path.join(alice.pw_dir, ".ollama", "models")
    as_user(alice, "ln", "-s", bob_store, link)
    check = _ollama.run(ollama_params([link], [alice]), check_mode=True)
    assert check["models"] == [] and check["removed"] == [], check["models"]
    assert "cannot read Ollama models dir %s: Permission denied" % link in check["problems"], check["problems"]
    assert "secret" not in str(check)
    result = _ollama.run(ollama_params([link], [alice]))
    assert result["removed"] == [] and result["failures"] == []
    assert digest(bob_store) == before


def test_ollama_manifests_are_read_with_the_users_rights(make_user):
    """In alice's store, root's 0700 directory holding a manifest (a namespace root made there) and alice's own
    manifest she made unreadable (mode 000): read as alice, neither is read, both are named, and as a manifest
    could not be read no layer of the store is removed; her readable model's manifest goes. (Root read both:
    they were listed and sized, alice's unreadable one removed with its layers.)"""
    alice = make_user()
    store = users_store(alice)
    og.model(store, "locked:1b", [b"cfg-locked", b"L" * 2500])
    chown_tree(alice, os.path.join(alice.pw_dir, ".ollama"))
    og.model(store, "secret:1b", [b"cfg-secret", b"Z" * 4000], namespace="hidden")  # root's, then root-only
    hidden = os.path.join(store, "manifests", "registry.ollama.ai", "hidden")
    os.chmod(hidden, 0o700)
    locked = os.path.join(store, "manifests", "registry.ollama.ai", "library", "locked", "1b")
    as_user(alice, "chmod", "000", locked)
    layers = og.blob_names(store)
    before = digest(hidden)
    check = _ollama.run(ollama_params([store], [alice]), check_mode=True)
    assert [m["name"] for m in check["models"]] == ["mine:1b"], check["models"]
    assert "cannot read %s: Permission denied" % hidden in check["problems"], check["problems"]
    assert "cannot read manifest %s: Permission denied" % locked in check["problems"], check["problems"]
    result = _ollama.run(ollama_params([store], [alice]))
    assert [(r["name"], r["layers_deleted"]) for r in result["removed"]] == [("mine:1b", 0)]
    assert og.blob_names(store) == layers and digest(hidden) == before
    assert os.path.lexists(locked)


def test_ollama_a_deeply_nested_manifest_fails_no_other_store(make_user):
    """alice's manifest is '[[[[...' nested 200,000 deep (under the 1 MiB cap): it is named as not a manifest and
    no layer of her store goes; bob's store is emptied. (The parser's RecursionError ended the whole run.)"""
    alice, bob = make_user(), make_user()
    alice_store, bob_store = users_store(alice), users_store(bob)
    nested = os.path.join(alice_store, "manifests", "registry.ollama.ai", "library", "mine", "2b")
    as_user(alice, "sh", "-c", "python3 -c \"print('[' * 200000)\" > '%s'" % nested)
    layers = og.blob_names(alice_store)
    result = _ollama.run(ollama_params([alice_store, bob_store], [alice, bob]))
    assert sorted((r["store"], r["name"]) for r in result["removed"]) == sorted([(alice_store, "mine:1b"),
                                                                                 (bob_store, "mine:1b")])
    assert "cannot read manifest %s: nested too deeply to be a manifest" % nested in result["problems"]
    assert og.blob_names(alice_store) == layers and not os.listdir(os.path.join(bob_store, "blobs"))


class _Running(object):
    """A thread running for the block: _privileges starts no child while one runs (forking a threaded process can
    deadlock the child), so every child acting as a user fails at once. The real failure path, without a race."""

    def __enter__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_ollama_a_store_whose_reading_child_fails_is_left_out_and_named(make_user, sandbox):
    """The child that reads alice's store cannot start: her store is left out (not listed, nothing planned or
    removed) and named as a failure; root's store (a given dir outside every home) is read and emptied by root.
    (Root read alice's store itself and listed her models; only the removal's child failed.)"""
    alice = make_user()
    alice_store = users_store(alice)
    root_store = os.path.join(sandbox, "srv-ollama")
    og.model(root_store, "served:7b", [b"cfg-served", b"S" * 4000])
    before = digest(alice_store)
    with _Running():
        result = _ollama.run(ollama_params([alice_store, root_store], [alice]))
    assert [(r["store"], r["name"]) for r in result["removed"]] == [(root_store, "served:7b")]
    assert [m["store"] for m in result["models"]] == [root_store]
    (failed,) = result["failures"]
    assert failed.startswith(alice_store + ": ") and alice.pw_name in failed and "not read" in failed, failed
    assert digest(alice_store) == before


def test_model_budget_reads_a_users_ollama_store_with_her_rights(make_user, sandbox):
    """alice's store's blobs/ is a bind mount of a root-only directory holding her layers and a 1 MiB layer: the
    budget reads her store as her, so root's bytes are not counted and the unreadable blobs/ is named; and when
    the child reading her store cannot start, her store is a failure and none of its models is chosen. (The budget
    read every Ollama store as root: it counted the 1 MiB and chose her model.)"""
    from ansible_collections.residue.purge.plugins.module_utils import _budget

    alice = make_user()
    store = users_store(alice)
    secret = os.path.join(sandbox, "root-only-layers")
    blobs = os.path.join(store, "blobs")
    subprocess.run(["cp", "-a", blobs, secret], check=True)
    big = b"B" * (1 << 20)
    write(os.path.join(secret, "sha256-" + hashlib.sha256(big).hexdigest()), big, 0o600)
    subprocess.run(["chown", "-R", "0:0", secret], check=True)
    os.chmod(secret, 0o700)
    before = digest(secret)
    p = {"max_size": "0", "homes": [], "users": [alice.pw_name], "scan_processes": False, "profiles": {},
         "force": False, "one_file_system": True}
    subprocess.run(["mount", "--bind", secret, blobs], check=True)
    try:
        check = _budget.run(p, check_mode=True)
        assert digest(secret) == before
    finally:
        subprocess.run(["umount", blobs], check=True)
    (listed,) = [s for s in check["stores"] if s["kind"] == "ollama"]
    assert listed["bytes_before"] < 1 << 20 and check["bytes_before"] < 1 << 20, check["stores"]
    assert "cannot read %s/blobs: Permission denied" % store in check["problems"], check["problems"]
    with _Running():
        failed = _budget.run(p, check_mode=True)
    assert failed["removed"] == [], failed["removed"]
    assert [f for f in failed["failures"] if f.startswith(store + ": ")] and all(
        "not read, nothing removed there" in f for f in failed["failures"]), failed["failures"]


# ------------------------------------------------------------------------------------------ modelscope

def users_cache(user):
    cache = os.path.join(user.pw_dir, ".cache", "modelscope", "hub")
    model = os.path.join(cache, "models", "qwen", "tiny")
    os.makedirs(os.path.join(model, "sub"))
    write(os.path.join(model, "model.bin"), b"m" * 5000)
    write(os.path.join(model, "sub", "tok.json"), b"t" * 100)
    chown_tree(user, os.path.join(user.pw_dir, ".cache"))
    return cache, model


def test_modelscope_a_root_owned_dir_in_a_users_model_stays_and_is_named(make_user):
    alice = make_user()
    cache, model = users_cache(alice)
    locked = os.path.join(model, "rootdir")
    os.mkdir(locked, 0o755)
    write(os.path.join(locked, "root-file"), "root's", 0o644)
    before = digest(locked)
    result = _modelscope.run(ms_params([cache], [alice]))
    assert digest(locked) == before
    assert result["failures"] == [os.path.join(locked, "root-file") + ": Permission denied"]
    assert sorted(os.listdir(model)) == ["rootdir"]  # alice's own files went


def test_modelscope_a_root_only_dir_in_a_users_model_is_sized_as_the_user(make_user):
    """Sizing runs as alice too: a root-only directory in her model is not read (named), its bytes not counted."""
    alice = make_user()
    cache, model = users_cache(alice)
    secret = os.path.join(model, "secret")
    os.mkdir(secret, 0o700)
    write(os.path.join(secret, "big"), b"s" * 200000)
    check = _modelscope.run(ms_params([cache], [alice]), check_mode=True)
    (listed,) = check["models"]
    assert listed["bytes"] < 100000, listed
    assert any(secret in p for p in check["problems"]), check["problems"]


def test_modelscope_a_bind_mount_of_a_root_directory_in_a_model_is_not_emptied(make_user, sandbox):
    """Even with one_file_system off (the walk enters other filesystems), alice's child cannot remove root's
    files reached through a bind mount in her model."""
    alice = make_user()
    cache, model = users_cache(alice)
    system = os.path.join(sandbox, "fake-var-lib")
    os.makedirs(os.path.join(system, "sub"))
    write(os.path.join(system, "db"), "root's db", 0o644)
    write(os.path.join(system, "sub", "conf"), "conf", 0o644)
    before = digest(system)
    mnt = os.path.join(model, "bind")
    as_user(alice, "mkdir", mnt)
    subprocess.run(["mount", "--bind", system, mnt], check=True)
    try:
        result = _modelscope.run(ms_params([cache], [alice], one_file_system=False))
        assert digest(system) == before
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert digest(system) == before
    assert result["failures"] and all(f.startswith(mnt) and "Permission denied" in f for f in result["failures"])


def test_modelscope_a_child_the_user_kills_fails_only_that_users_cache(make_user, sandbox):
    alice, bob = make_user(), make_user()
    (alice_cache, alice_model), (bob_cache, bob_model) = users_cache(alice), users_cache(bob)
    many = os.path.join(alice_model, "many")
    as_user(alice, "sh", "-c", "mkdir -p '%s' && cd '%s' && seq 1 4000 | xargs touch" % (many, many))
    proc = start_killer(alice, sandbox)
    try:
        result = _modelscope.run(ms_params([alice_cache, bob_cache], [alice, bob]))
    finally:
        stop_killer(proc, sandbox)
    assert [r["path"] for r in result["removed"]] == [bob_model] and not os.path.exists(bob_model)
    assert result["failures"] and all(f.startswith(alice_cache) and alice.pw_name in f for f in result["failures"])
    assert os.path.isdir(many)  # root did not redo alice's work


# ------------------------------------------------------------------------------------------ model_budget

def test_model_budget_empties_a_users_stores_with_that_users_rights(make_user):
    """The prune playbook's budget (0 here: everything goes) over alice's HF cache, Ollama store, ModelScope
    cache and torch hub, each with a directory root planted in it: alice's own models go, root's files stay in
    every store, each named as a failure (the code before removed them all as root)."""
    from ansible_collections.residue.purge.plugins.module_utils import _budget
    from ansible_collections.residue.purge.tests.unit.support import hfgen

    alice = make_user()
    hub = os.path.join(alice.pw_dir, ".cache", "huggingface", "hub")
    (repo,) = hfgen.make_cache(hub, repos=1, seed=3, max_file_size=4096)
    og.model(os.path.join(alice.pw_dir, ".ollama", "models"), "mine:1b", [b"cfg-mine", b"M" * 3000])
    ms_model = os.path.join(alice.pw_dir, ".cache", "modelscope", "hub", "models", "qwen", "tiny")
    os.makedirs(ms_model)
    write(os.path.join(ms_model, "model.bin"), b"m" * 5000)
    checkout = os.path.join(alice.pw_dir, ".cache", "torch", "hub", "owner_repo_main")
    os.makedirs(os.path.join(checkout, "src"))
    write(os.path.join(checkout, "src", "hubconf.py"), "x = 1\n")
    write(os.path.join(alice.pw_dir, ".cache", "torch", "hub", "trusted_list"), "owner_repo\n")
    chown_tree(alice, os.path.join(alice.pw_dir, ".cache"))
    chown_tree(alice, os.path.join(alice.pw_dir, ".ollama"))
    planted = [os.path.join(repo.path, "snapshots", repo.commits[0], "root-dir"), os.path.join(ms_model, "root-dir"),
               os.path.join(checkout, "root-dir")]
    for d in planted:
        os.mkdir(d, 0o755)
        write(os.path.join(d, "root-file"), "root's")
    og.model(os.path.join(alice.pw_dir, ".ollama", "models"), "rootmodel:1b", [b"cfg-root", b"R" * 2000])
    root_manifest = os.path.join(alice.pw_dir, ".ollama", "models", "manifests", "registry.ollama.ai", "library",
                                 "rootmodel", "1b")
    p = {"max_size": "0", "homes": [], "users": [alice.pw_name], "scan_processes": False, "profiles": {},
         "force": False, "one_file_system": True}
    check = _budget.run(p, check_mode=True)
    assert sorted(r["kind"] for r in check["removed"]) == [
        "hf_repo", "modelscope_model", "ollama_model", "ollama_model", "torch_hub"]
    result = _budget.run(p)
    for d in planted:
        assert open(os.path.join(d, "root-file")).read() == "root's"
    assert os.path.isfile(root_manifest)
    failures = result["failures"]
    for where in planted + [root_manifest]:
        assert any(f.startswith(where) and "Permission denied" in f for f in failures), (where, failures)
    assert not os.path.exists(os.path.join(ms_model, "model.bin"))
    assert not os.path.exists(os.path.join(checkout, "src"))
    assert os.path.isfile(os.path.join(alice.pw_dir, ".cache", "torch", "hub", "trusted_list"))  # not a model
    assert "mine:1b" not in str(os.listdir(os.path.join(alice.pw_dir, ".ollama", "models", "manifests",
                                                        "registry.ollama.ai", "library")))


def test_ollama_a_store_a_users_process_names_outside_every_home_is_acted_on_as_that_user(make_user, sandbox):
    """OLLAMA_MODELS=/data/alice/ollama (alice's own directory outside her home) in the environment of alice's
    running process: the store is found and claimed by alice, so it is emptied as alice; a manifest directory
    root made in it stays (the code before removed it as root)."""
    alice = make_user()
    data = os.path.join(sandbox, "data", alice.pw_name)
    store = os.path.join(data, "ollama")
    og.model(store, "mine:1b", [b"cfg-mine", b"M" * 3000])
    chown_tree(alice, data)
    og.model(store, "rootmodel:1b", [b"cfg-root", b"R" * 2000])  # root's dirs in alice's store
    rootdir = os.path.join(store, "manifests", "registry.ollama.ai", "library", "rootmodel")
    before = digest(rootdir)
    proc = subprocess.Popen(["runuser", "-u", alice.pw_name, "--", "env", "OLLAMA_MODELS=" + store, "sleep", "60"],
                            cwd="/")
    try:
        deadline = time.time() + 10
        while time.time() < deadline:  # runuser has exec'd sleep with the environment
            if any(("OLLAMA_MODELS=" + store).encode() in open("/proc/%s/environ" % pid, "rb").read()
                   for pid in os.listdir("/proc") if pid.isdigit() and os.path.exists("/proc/%s/environ" % pid)
                   and os.stat("/proc/" + pid).st_uid == alice.pw_uid):
                break
            time.sleep(0.1)
        actors = {}
        found = _ollama.store_locations(dict(ollama_params([], [alice]), discover=True, scan_processes=True),
                                        [], actors)
        assert [p for p, _u, _s in found] == [store] and actors[store].uid == alice.pw_uid
        result = _ollama.run(dict(ollama_params([], [alice]), discover=True, scan_processes=True))
    finally:
        proc.kill()
        proc.wait()
    assert digest(rootdir) == before
    assert [r["name"] for r in result["removed"]] == ["mine:1b"]
    assert result["failures"] == [os.path.join(rootdir, "1b") + ": Permission denied"]


def test_model_budget_never_enters_a_protected_directory_bind_mounted_or_linked_into_a_cache(make_user):
    """alice's ~/.config (a protected directory) holds her hub cache's shared-store payload: it is bind-mounted as
    the store's prefix directory (blobs/xx), and linked from a snapshot. The budget (0: everything goes) removes
    her repo, but the payload its removal orphans stays (a failure names the protected directory) and the link is
    not followed. The code before called hf_cache's clean without the protected set: alice's child collected the
    payload in her ~/.config through the mount (her own file, so the kernel let it)."""
    from ansible_collections.residue.purge.plugins.module_utils import _budget
    from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared

    alice = make_user()
    config = os.path.join(alice.pw_dir, ".config")
    hub = os.path.join(alice.pw_dir, ".cache", "huggingface", "hub")
    (repo,) = hfgen.make_cache(hub, repos=1, seed=5, max_file_size=4096)
    (xet,) = list(hfshared.share(hub, [repo], payloads=1, fraction=1.0, seed=5))
    prefix = os.path.join(hub, "blobs", xet[:2])
    os.makedirs(config)
    for name in os.listdir(prefix):  # the payload and its manifest now live in ~/.config, mounted back in place
        os.rename(os.path.join(prefix, name), os.path.join(config, name))
    write(os.path.join(config, "settings.ini"), "alice's settings")
    snapshot = os.path.join(repo.path, "snapshots", repo.commits[0])
    os.symlink(config, os.path.join(snapshot, "link"))
    chown_tree(alice, os.path.join(alice.pw_dir, ".cache"))
    chown_tree(alice, config)
    before = digest(config)
    p = {"max_size": "0", "homes": [], "users": [alice.pw_name], "scan_processes": False, "profiles": {},
         "force": False, "one_file_system": True}
    subprocess.run(["mount", "--bind", config, prefix], check=True)
    try:
        result = _budget.run(p)
        assert digest(config) == before
    finally:
        subprocess.run(["umount", prefix], check=True)
    assert digest(config) == before
    assert [r["name"] for r in result["removed"]] == [repo.repo_id] and not os.path.exists(repo.path)
    assert any("protected directory" in f for f in result["failures"]), result["failures"]


def test_model_budget_sizes_a_users_hub_cache_with_her_rights(make_user, sandbox):
    """alice's repo's blobs/ is a bind mount of a root-only directory holding its blobs, one of them 1 MiB: the budget
    scans her cache in a child acting as her (as hf_cache does), so root's bytes are neither counted in her store
    nor chosen, and the unreadable directory is named. The old code scanned every hub cache as root and counted
    them."""
    from ansible_collections.residue.purge.plugins.module_utils import _budget
    from ansible_collections.residue.purge.tests.unit.support import hfgen

    alice = make_user()
    hub = os.path.join(alice.pw_dir, ".cache", "huggingface", "hub")
    (repo,) = hfgen.make_cache(hub, repos=1, seed=7, max_file_size=4096)
    chown_tree(alice, os.path.join(alice.pw_dir, ".cache"))
    secret = os.path.join(sandbox, "root-only")  # the repo's blobs, one of them 1 MiB, in a root-only directory
    mnt = os.path.join(repo.path, "blobs")
    subprocess.run(["cp", "-a", mnt, secret], check=True)
    subprocess.run(["chown", "-R", "0:0", secret], check=True)
    os.chmod(secret, 0o700)
    write(os.path.join(secret, sorted(os.listdir(secret))[0]), os.urandom(1 << 20), 0o600)
    before = digest(secret)
    subprocess.run(["mount", "--bind", secret, mnt], check=True)
    p = {"max_size": "0", "homes": [], "users": [alice.pw_name], "scan_processes": False, "profiles": {},
         "force": False, "one_file_system": True}
    try:
        check = _budget.run(p, check_mode=True)
        assert digest(secret) == before
    finally:
        subprocess.run(["umount", mnt], check=True)
    (store,) = [s for s in check["stores"] if s["kind"] == "hf"]
    assert store["bytes_before"] < 1 << 20 and check["bytes_before"] < 1 << 20, check["stores"]
    assert all(r["freed_bytes"] < 1 << 20 for r in check["removed"]), check["removed"]
    assert any(mnt in p and "Permission denied" in p for p in check["problems"]), check["problems"]
