# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ollama_models on real Ollama layouts: what `ollama rm` leaves is the reference (a removed model's layers go
only when no remaining manifest references them); open files, unreadable manifests and swapped links tried."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _ollama
from ansible_collections.residue.purge.tests.unit.support import ollamagen as og

NOW = time.time()
DAY = 86400.0


def params(store, **kw):
    p = {"models_dirs": [store], "discover": False, "models": [], "keep": [], "older_than": None, "max_size": None,
         "orphans": False, "orphans_older_than": "1d", "force": False, "homes": [], "users": "all",
         "scan_processes": False}
    p.update(kw)
    return p


def digest_of(content):
    return "sha256-" + hashlib.sha256(content).hexdigest()


def reference_rm(store, removed):
    """What `ollama rm` leaves: every blob except the removed models' layers no remaining manifest references."""
    manifests = {}
    for dirpath, _d, files in os.walk(os.path.join(store, "manifests")):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path) as f:
                doc = json.load(f)
            manifests[path] = set(e["digest"].replace(":", "-") for e in doc["layers"] + [doc["config"]])
    gone = set()
    for path in removed:
        gone |= manifests.pop(path)
    remaining = set().union(*manifests.values()) if manifests else set()
    return sorted(set(og.blob_names(store)) - (gone - remaining))


@pytest.fixture
def store(tmp_path):
    s = str(tmp_path / "models")
    base = ("license", b"B" * 3000)  # a layer three models share
    template = ("template", b"template")
    og.model(s, "llama3:8b", [b"cfg-llama3-8b", base, b"W" * 5000, template], mtime=NOW - 40 * DAY)
    og.model(s, "llama3:70b", [b"cfg-llama3-70b", base, b"X" * 7000, template], mtime=NOW - 10 * DAY)
    og.model(s, "qwen:7b", [b"cfg-qwen", base, b"Q" * 4000], mtime=NOW - 2 * DAY)
    og.model(s, "bert:latest", [b"cfg-bert", b"E" * 1000], registry="hf.co", namespace="someone", mtime=NOW - 90 * DAY)
    for name in og.blob_names(s):  # last used = atime of the layers
        p = os.path.join(s, "blobs", name)
        st = os.stat(p)
        os.utime(p, (st.st_mtime, st.st_mtime))
    return s


def test_lists_models_with_sizes_and_exclusive_sizes(store):
    res = _ollama.run(params(store))
    assert res["changed"] is False and res["removed"] == [] and res["failures"] == []
    by = dict((m["name"], m) for m in res["models"])
    assert sorted(by) == ["hf.co/someone/bert:latest", "llama3:70b", "llama3:8b", "qwen:7b"]
    assert by["llama3:8b"]["bytes"] == len(b"cfg-llama3-8b") + 3000 + 5000 + len(b"template")
    # the base layer is shared by three, the template by two: exclusive is the config and its own weights
    assert by["llama3:8b"]["exclusive_bytes"] == len(b"cfg-llama3-8b") + 5000
    assert by["hf.co/someone/bert:latest"]["model"] == "hf.co/someone/bert:latest"
    assert by["qwen:7b"]["model"] == "registry.ollama.ai/library/qwen:7b"
    assert abs(by["llama3:8b"]["last_used"] - (NOW - 40 * DAY)) < 2


def test_remove_by_pattern_is_ollama_rm(store):
    expected = reference_rm(store, [os.path.join(store, "manifests/registry.ollama.ai/library/llama3", t)
                                    for t in ("8b", "70b")])
    check = _ollama.run(params(store, models=["llama3"]), check_mode=True)
    assert og.blob_names(store) != expected  # nothing happened in check mode
    res = _ollama.run(params(store, models=["llama3"]))
    assert og.blob_names(store) == expected
    assert sorted(r["name"] for r in res["removed"]) == ["llama3:70b", "llama3:8b"]
    planned = [(r["name"], r["freed_bytes"]) for r in check["removed"]]
    assert [(r["name"], r["freed_bytes"]) for r in res["removed"]] == planned
    assert res["freed_bytes"] == sum(len(c) for c in (b"cfg-llama3-8b", b"cfg-llama3-70b", b"template")) + 5000 + 7000
    assert not os.path.exists(os.path.join(store, "manifests/registry.ollama.ai/library/llama3"))
    assert os.path.isdir(os.path.join(store, "manifests/registry.ollama.ai/library"))  # qwen is still there
    again = _ollama.run(params(store, models=["llama3"]))
    assert again["changed"] is False
    for name in og.blob_names(store):  # every remaining model's layers still read
        with open(os.path.join(store, "blobs", name), "rb") as f:
            assert digest_of(f.read()) == name


def test_keep_and_age(store):
    res = _ollama.run(params(store, older_than="30d", keep=["hf.co/*"]))
    assert [r["name"] for r in res["removed"]] == ["llama3:8b"]


def test_budget_removes_least_recently_used_first_and_counts_shared_layers_once(store):
    total = sum(os.path.getsize(os.path.join(store, "blobs", n)) for n in og.blob_names(store))
    res = _ollama.run(params(store, max_size=str(total - 1009)))
    # bert (oldest) frees 1000+8: not enough; llama3:8b (next) frees its config and weights
    assert [r["name"] for r in res["removed"]] == ["hf.co/someone/bert:latest", "llama3:8b"]
    assert all(r["reason"] == "budget" for r in res["removed"])
    left = sum(os.path.getsize(os.path.join(store, "blobs", n)) for n in og.blob_names(store))
    assert res["stores"][0]["bytes_after"] == left <= total - 1009
    assert res["stores"][0]["over_budget"] is False


def test_model_whose_layer_is_open_is_held_back(store):
    weights = os.path.join(store, "blobs", digest_of(b"W" * 5000))
    proc = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); print(1, flush=True);"
                             " time.sleep(60)", weights], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = _ollama.run(params(store, models=["llama3:*"]))
        assert [r["name"] for r in res["removed"]] == ["llama3:70b"]
        assert res["held_back"][0]["name"] == "llama3:8b" and res["held_back"][0]["reason"] == "in_use"
        assert os.path.isfile(weights)
        assert os.path.isfile(os.path.join(store, "manifests/registry.ollama.ai/library/llama3/8b"))
    finally:
        proc.kill()
        proc.wait()


def test_unreadable_manifest_keeps_every_layer(store):
    broken = os.path.join(store, "manifests/registry.ollama.ai/library/mystery/latest")
    os.makedirs(os.path.dirname(broken))
    with open(broken, "w") as f:
        f.write("{not json")
    before = og.blob_names(store)
    res = _ollama.run(params(store, models=["llama3:8b"], orphans=True, orphans_older_than="0s"))
    assert [r["name"] for r in res["removed"]] == ["llama3:8b"] and res["removed"][0]["freed_bytes"] == 0
    assert og.blob_names(store) == before and res["swept"] == []
    assert any("mystery" in p for p in res["problems"])


def test_orphans_and_partials_older_than_the_threshold(store):
    orphan = os.path.join(store, "blobs", digest_of(b"orphan"))
    with open(orphan, "wb") as f:
        f.write(b"orphan")
    fresh = os.path.join(store, "blobs", digest_of(b"fresh orphan"))
    with open(fresh, "wb") as f:
        f.write(b"fresh orphan")
    partial = os.path.join(store, "blobs", digest_of(b"x") + "-partial")
    part0 = partial + "-0"
    held = os.path.join(store, "blobs", digest_of(b"y") + "-partial")
    for p in (partial, part0, held):
        with open(p, "wb") as f:
            f.write(b"p" * 100)
    for p in (orphan, partial, part0, held):
        os.utime(p, (NOW - 3 * DAY, NOW - 3 * DAY))
    proc = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'ab'); print(1, flush=True);"
                             " time.sleep(60)", held], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = _ollama.run(params(store, orphans=True))
    finally:
        proc.kill()
        proc.wait()
    assert sorted((os.path.basename(s["path"]), s["kind"]) for s in res["swept"]) == sorted([
        (os.path.basename(orphan), "orphan_layer"), (os.path.basename(partial), "partial"),
        (os.path.basename(part0), "partial")])
    assert os.path.exists(fresh) and os.path.exists(held) and not os.path.exists(orphan)
    assert res["removed"] == [] and res["held_back"][0]["name"] == os.path.basename(held)


def test_blobs_swapped_for_a_link_outside_is_never_followed(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in og.blob_names(store):
        (outside / name).write_bytes(b"precious")
    res = _ollama.run(params(store, models=["llama3:8b"]), check_mode=True)
    assert res["removed"]
    import shutil
    shutil.rmtree(os.path.join(store, "blobs"))
    os.symlink(str(outside), os.path.join(store, "blobs"))
    res = _ollama.run(params(store, models=["llama3:8b"]))
    assert all((outside / n).read_bytes() == b"precious" for n in os.listdir(str(outside)))
    assert len(os.listdir(str(outside))) == 10 and res["failures"]


def test_hard_linked_layer_counts_only_at_its_last_link(store, tmp_path):
    weights = os.path.join(store, "blobs", digest_of(b"W" * 5000))
    os.link(weights, str(tmp_path / "copy"))
    res = _ollama.run(params(store, models=["llama3:8b"]))
    assert res["freed_bytes"] == len(b"cfg-llama3-8b")
    assert (tmp_path / "copy").read_bytes() == b"W" * 5000


def test_ollama_models_env_of_a_users_process_is_found(tmp_path):
    home = tmp_path / "home"
    (home / ".ollama" / "models").mkdir(parents=True)
    data = str(tmp_path / "data" / "models")
    og.model(data, "tiny:1b", [b"c", b"w"])
    env = dict(os.environ, OLLAMA_MODELS=data)
    proc = subprocess.Popen([sys.executable, "-c", "import time; print(1, flush=True); time.sleep(60)"], env=env,
                            stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = _ollama.run({"models_dirs": [], "discover": None, "models": [], "keep": [], "older_than": None,
                           "max_size": None, "orphans": False, "orphans_older_than": "1d", "force": False,
                           "homes": [str(home)], "users": "all", "scan_processes": True})
    finally:
        proc.kill()
        proc.wait()
    stores = dict((s["path"], s) for s in res["stores"])
    assert data in stores and "OLLAMA_MODELS" in stores[data]["source"]
    assert [m["name"] for m in res["models"] if m["store"] == data] == ["tiny:1b"]


def test_bad_options_fail_before_anything_happens(store):
    for bad in (dict(models=[" x"]), dict(older_than="soon"), dict(max_size="lots"), dict(models_dirs=["rel"])):
        with pytest.raises(ValueError):
            _ollama.run(params(store, **bad))
