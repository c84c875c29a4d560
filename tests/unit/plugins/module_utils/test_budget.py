# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One size budget per host across HF (shared store), Ollama, ModelScope and torch hub: least recently used first,
whatever the store; what is shared is counted when its last reference goes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from ansible_collections.residue.purge.plugins.module_utils import _budget  # noqa: E402
from ansible_collections.residue.purge.tests.unit.support import hfgen, hfshared, ollamagen as og  # noqa: E402

NOW = time.time()
DAY = 86400.0


def age(path, days):
    stamp = NOW - days * DAY
    for dirpath, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.utime(p, (stamp, stamp))
        os.utime(dirpath, (stamp, stamp))


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    hub = str(h / ".cache" / "huggingface" / "hub")
    old = hfgen.add_repo(hub, "org/old", revisions=1, files_per_revision=2)
    new = hfgen.add_repo(hub, "org/new", revisions=1, files_per_revision=2)
    hfshared.share(hub, [old, new], payloads=1, fraction=1.0)
    age(os.path.join(hub, "blobs"), 10)  # the payload both use: 10 days
    ollama = str(h / ".ollama" / "models")
    og.model(ollama, "stale:1b", [b"cfg-stale", b"S" * 6000], mtime=NOW - 40 * DAY)
    og.model(ollama, "fresh:1b", [b"cfg-fresh", b"F" * 6000], mtime=NOW - 1 * DAY)
    for name in og.blob_names(ollama):
        p = os.path.join(ollama, "blobs", name)
        os.utime(p, (os.stat(p).st_mtime,) * 2)
    ms = str(h / ".cache" / "modelscope" / "hub" / "models" / "qwen" / "tiny")
    os.makedirs(ms)
    with open(os.path.join(ms, "model.bin"), "wb") as f:
        f.write(b"m" * 20000)
    age(ms, 20)
    torch = str(h / ".cache" / "torch" / "hub" / "checkpoints")
    os.makedirs(torch)
    with open(os.path.join(torch, "resnet.pth"), "wb") as f:
        f.write(b"t" * 30000)
    age(torch, 30)
    return h


def params(home, max_size):
    return {"max_size": str(max_size), "homes": [str(home)], "users": "all", "scan_processes": False,
            "profiles": {}, "force": False, "one_file_system": True}


def test_least_recently_used_first_across_stores(home):
    listed = _budget.run(params(home, 10 ** 12), check_mode=True)
    assert listed["removed"] == [] and sorted(s["kind"] for s in listed["stores"]) == [
        "hf", "modelscope", "ollama", "torch_hub"]
    total = listed["bytes_before"]
    everything = _budget.run(params(home, 0), check_mode=True)  # the whole LRU order, with what each frees
    order = [(r["kind"], r["name"]) for r in everything["removed"]]
    assert order[:3] == [("ollama_model", "registry.ollama.ai/library/stale:1b"),
                         ("torch_hub", "checkpoints/resnet.pth"), ("modelscope_model", "qwen/tiny")]
    assert everything["bytes_after"] == 0 and sum(r["freed_bytes"] for r in everything["removed"]) == total
    budget = total - sum(r["freed_bytes"] for r in everything["removed"][:2]) - 1  # one byte short after two
    check = _budget.run(params(home, budget), check_mode=True)
    assert [(r["kind"], r["name"]) for r in check["removed"]] == order[:3]
    real = _budget.run(params(home, budget))
    assert [(r["kind"], r["name"]) for r in real["removed"]] == [(r["kind"], r["name"]) for r in check["removed"]]
    assert real["failures"] == [] and real["over_budget"] is False
    assert not os.path.exists(str(home / ".cache" / "torch" / "hub" / "checkpoints" / "resnet.pth"))
    assert og.blob_names(str(home / ".ollama" / "models")) == sorted(
        "sha256-" + __import__("hashlib").sha256(c).hexdigest() for c in (b"cfg-fresh", b"F" * 6000))


def test_a_shared_payload_counts_when_its_last_repo_goes(home):
    res = _budget.run(params(home, 0), check_mode=True)
    hf = [(r["name"], r["freed_bytes"]) for r in res["removed"] if r["kind"] == "hf_repo"]
    store = sum(os.path.getsize(os.path.join(d, f))
                for d, _s, fs in os.walk(str(home / ".cache" / "huggingface" / "hub" / "blobs")) for f in fs
                if len(f) == 64)
    # the repos' blobs all live in one shared payload: the first repo frees nothing, the second all of it
    assert [name for name, _b in hf] == ["org/old", "org/new"] or [name for name, _b in hf] == ["org/new", "org/old"]
    assert [b for _n, b in hf] == [0, store]
    real = _budget.run(params(home, 0))
    assert sorted(r["name"] for r in real["removed"] if r["kind"] == "hf_repo") == ["org/new", "org/old"]
    assert real["freed_bytes"] >= store and real["failures"] == []
    left = [f for _d, _s, fs in os.walk(str(home / ".cache" / "huggingface" / "hub" / "blobs")) for f in fs
            if len(f) == 64]
    assert left == []  # the payload went with the second repo


def test_a_model_in_use_is_skipped_and_the_next_one_taken(home):
    import subprocess
    import sys
    checkpoint = str(home / ".cache" / "torch" / "hub" / "checkpoints" / "resnet.pth")
    everything = _budget.run(params(home, 0), check_mode=True)
    total = everything["bytes_before"]
    budget = total - sum(r["freed_bytes"] for r in everything["removed"][:2]) - 1
    proc = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); print(1, flush=True);"
                             " time.sleep(60)", checkpoint], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = _budget.run(params(home, budget))
    finally:
        proc.kill()
        proc.wait()
    kinds = [r["kind"] for r in res["removed"]]
    assert "torch_hub" not in kinds and kinds[:2] == ["ollama_model", "modelscope_model"]
    assert res["held_back"][0]["kind"] == "torch_hub" and os.path.isfile(checkpoint)


def test_a_model_and_a_dataset_with_the_same_id_are_chosen_apart(tmp_path):
    """models--org--x (old) and datasets--org--x (new) side by side: only the model is chosen, and only the model
    goes (the code before selected by id and removed both)."""
    h = tmp_path / "home"
    hub = str(h / ".cache" / "huggingface" / "hub")
    model = hfgen.add_repo(hub, "org/x", repo_type="model", revisions=1, files_per_revision=2)
    dataset = hfgen.add_repo(hub, "org/x", repo_type="dataset", revisions=1, files_per_revision=2)
    age(model.path, 30)
    age(dataset.path, 1)
    listed = _budget.run(params(h, 0), check_mode=True)
    total = listed["bytes_before"]
    check = _budget.run(params(h, total - 1), check_mode=True)
    assert [(r["name"], r["path"]) for r in check["removed"]] == [("org/x", model.path)]
    real = _budget.run(params(h, total - 1))
    assert [(r["name"], r["path"]) for r in real["removed"]] == [("org/x", model.path)]
    assert not os.path.exists(model.path) and os.path.isdir(dataset.path)
    assert real["failures"] == [] and real["over_budget"] is False


def test_a_candidate_opened_after_the_choice_is_replaced_by_the_next_least_recently_used(home, monkeypatch):
    """The stale Ollama model is chosen; before it is removed a real process opens its weights (the Ollama
    server loading it): ollama_models' own check holds it back, and the next least recently used (the torch
    checkpoint) goes instead, so the host ends within the budget (the code before stopped over it)."""
    import hashlib
    import subprocess
    import sys
    everything = _budget.run(params(home, 0), check_mode=True)
    first = everything["removed"][0]
    assert first["name"] == "registry.ollama.ai/library/stale:1b"
    budget = everything["bytes_before"] - first["freed_bytes"]  # removing the stale model alone would fit
    weights = str(home / ".ollama" / "models" / "blobs" / ("sha256-" + hashlib.sha256(b"S" * 6000).hexdigest()))
    procs = []
    real_execute = _budget._execute

    def opened_meanwhile(*args, **kw):
        if not procs:
            procs.append(subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); "
                                           "print(1, flush=True); time.sleep(60)", weights], stdout=subprocess.PIPE))
            procs[0].stdout.readline()
        return real_execute(*args, **kw)

    monkeypatch.setattr(_budget, "_execute", opened_meanwhile)
    try:
        res = _budget.run(params(home, budget))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert procs, "the store's removal was never reached"
    assert [(h["kind"], h["name"], h["reason"]) for h in res["held_back"]] == [
        ("ollama_model", "registry.ollama.ai/library/stale:1b", "in_use")]
    assert [r["kind"] for r in res["removed"]] == ["torch_hub"] and res["failures"] == []
    assert res["over_budget"] is False and res["bytes_after"] <= budget
    assert os.path.isfile(weights)


def test_an_ollama_store_with_an_unreadable_manifest_gives_no_candidates(home):
    """A manifest that cannot be read means no layer of that store may go: removing its models would free
    nothing and lose them. The budget leaves the store alone and says why (the code before removed both models
    there, freeing 0 bytes)."""
    store = str(home / ".ollama" / "models")
    bad = os.path.join(store, "manifests", "registry.ollama.ai", "library", "broken", "latest")
    os.makedirs(os.path.dirname(bad))
    with open(bad, "w") as f:
        f.write("{not json")
    before = og.listing(store)
    res = _budget.run(params(home, 0))
    assert og.listing(store) == before
    assert [r for r in res["removed"] if r["kind"] == "ollama_model"] == []
    assert any("no model there is a budget candidate" in p and bad in p for p in res["problems"]), res["problems"]
    assert sorted(r["kind"] for r in res["removed"]) == ["hf_repo", "hf_repo", "modelscope_model", "torch_hub"]
