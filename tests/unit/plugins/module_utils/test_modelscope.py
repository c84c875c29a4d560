# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""modelscope_models on real ModelScope layouts (both), with downloads in progress, open files and links."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _modelscope

NOW = time.time()
DAY = 86400.0


def params(cache, **kw):
    p = {"cache_dirs": [cache], "discover": False, "models": [], "keep": [], "older_than": None, "max_size": None,
         "incomplete_older_than": "1d", "force": False, "one_file_system": True, "homes": [], "users": "all",
         "scan_processes": False}
    p.update(kw)
    return p


def make_model(base, size, age, metadata=True):
    os.makedirs(base)
    files = {"configuration.json": b"{}", "model.safetensors": b"w" * size, "sub/tokenizer.json": b"t" * 100}
    if metadata:
        files.update({".mdl": b"\x80\x04pickled", ".msc": b"\x80\x04pickled", ".mv": b"Revision:master"})
    for rel, data in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (NOW - age, NOW - age))
    for dirpath, _d, _f in os.walk(base):
        os.utime(dirpath, (NOW - age, NOW - age))


@pytest.fixture
def cache(tmp_path):
    c = str(tmp_path / "hub")
    make_model(os.path.join(c, "models", "qwen", "Qwen2___5-7B"), 40000, 50 * DAY)
    make_model(os.path.join(c, "models", "qwen", "Qwen2___5-0___5B"), 9000, 5 * DAY)
    make_model(os.path.join(c, "models", "damo", "nlp_bert"), 20000, 20 * DAY, metadata=False)
    make_model(os.path.join(c, "iic", "old_flat_model"), 30000, 70 * DAY)  # older flat layout
    os.makedirs(os.path.join(c, "iic", "not_a_model"))  # no metadata: not a model
    os.makedirs(os.path.join(c, "datasets", "x", "y"))
    return c


def ids(res, key="models"):
    return sorted(m["model_id"] for m in res[key])


def test_lists_both_layouts(cache):
    res = _modelscope.run(params(cache))
    assert ids(res) == ["damo/nlp_bert", "iic/old_flat_model", "qwen/Qwen2.5-0.5B", "qwen/Qwen2.5-7B"]
    assert res["changed"] is False
    flat = [m for m in res["models"] if m["layout"] == "flat"][0]
    assert flat["path"].endswith("/iic/old_flat_model")


def test_remove_by_pattern_both_layouts_and_nothing_else(cache):
    before = sorted(os.listdir(os.path.join(cache, "models", "qwen")))
    check = _modelscope.run(params(cache, models=["qwen/Qwen2.5-7B", "iic/*"]), check_mode=True)
    assert sorted(os.listdir(os.path.join(cache, "models", "qwen"))) == before
    res = _modelscope.run(params(cache, models=["qwen/Qwen2.5-7B", "iic/*"]))
    assert ids(res, "removed") == ids(check, "removed") == ["iic/old_flat_model", "qwen/Qwen2.5-7B"]
    assert not os.path.exists(os.path.join(cache, "models", "qwen", "Qwen2___5-7B"))
    assert not os.path.exists(os.path.join(cache, "iic", "old_flat_model"))
    assert os.path.isdir(os.path.join(cache, "iic", "not_a_model"))
    assert os.path.isfile(os.path.join(cache, "models", "qwen", "Qwen2___5-0___5B", "model.safetensors"))
    assert res["freed_bytes"] == sum(r["bytes"] for r in res["removed"]) > 70000
    assert _modelscope.run(params(cache, models=["qwen/Qwen2.5-7B", "iic/*"]))["changed"] is False


def test_age_and_budget(cache):
    assert ids(_modelscope.run(params(cache, older_than="30d"), check_mode=True), "removed") == [
        "iic/old_flat_model", "qwen/Qwen2.5-7B"]
    listed = _modelscope.run(params(cache))
    sizes = dict((m["model_id"], m["bytes"]) for m in listed["models"])
    total = sum(sizes.values())
    res = _modelscope.run(params(cache, max_size=str(total - sizes["iic/old_flat_model"] - 1), keep=["qwen/*"]))
    # oldest first: the flat one, then damo (the qwen ones are kept)
    assert [r["model_id"] for r in res["removed"]] == ["iic/old_flat_model", "damo/nlp_bert"]
    assert all(r["reason"] == "budget" for r in res["removed"])


def test_download_in_progress_is_kept_even_with_force(cache):
    temp = os.path.join(cache, "._____temp", "qwen", "Qwen2___5-7B")
    os.makedirs(temp)
    with open(os.path.join(temp, "model.safetensors"), "wb") as f:
        f.write(b"partial")
    res = _modelscope.run(params(cache, models=["qwen/*"], force=True))
    assert ids(res, "removed") == ["qwen/Qwen2.5-0.5B"]
    assert res["held_back"][0]["model_id"] == "qwen/Qwen2.5-7B" and "download" in res["held_back"][0]["detail"]
    assert os.path.isdir(temp) and os.path.isdir(os.path.join(cache, "models", "qwen", "Qwen2___5-7B"))


def test_open_file_holds_the_model_back(cache):
    path = os.path.join(cache, "models", "damo", "nlp_bert", "model.safetensors")
    proc = subprocess.Popen([sys.executable, "-c", "import sys,time; f=open(sys.argv[1],'rb'); print(1, flush=True);"
                             " time.sleep(60)", path], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        res = _modelscope.run(params(cache, models=["damo/*"]))
        assert res["removed"] == [] and res["held_back"][0]["reason"] == "in_use" and os.path.isfile(path)
    finally:
        proc.kill()
        proc.wait()


def test_model_dir_swapped_for_a_link_is_not_followed(cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"x")
    target = os.path.join(cache, "models", "damo", "nlp_bert")
    plan_only = _modelscope.run(params(cache, models=["damo/*"]), check_mode=True)
    assert ids(plan_only, "removed") == ["damo/nlp_bert"]
    import shutil
    shutil.rmtree(os.path.join(cache, "models", "damo"))
    os.symlink(str(outside), os.path.join(cache, "models", "damo"))
    res = _modelscope.run(params(cache, models=["damo/*"]))
    assert (outside / "precious").read_bytes() == b"x"
    assert res["removed"] == [] and os.path.islink(os.path.join(cache, "models", "damo"))
    # a model dir that is itself a link is no model dir either
    os.unlink(os.path.join(cache, "models", "damo"))
    os.makedirs(os.path.join(cache, "models", "damo"))
    os.symlink(str(outside), target)
    res = _modelscope.run(params(cache, models=["damo/*"]))
    assert res["removed"] == [] and os.path.islink(target) and (outside / "precious").read_bytes() == b"x"


def test_warnings_name_the_held_back_model_and_the_budget_not_met(cache):
    temp = os.path.join(cache, "._____temp", "qwen", "Qwen2___5-7B")
    os.makedirs(temp)
    res = _modelscope.run(params(cache, max_size="1K"), check_mode=True)
    held = [w for w in res["_warnings"] if w.startswith("modelscope_models: ")]
    assert held == ["modelscope_models: qwen/Qwen2.5-7B in %s held back (in_use): %s" % (
        cache, res["held_back"][0]["detail"])]
    assert [w for w in res["_warnings"] if not w.startswith("modelscope_models: ")] == [
        "ModelScope cache %s stays over its budget (%d > 1024 bytes): what is left is kept, held back or out of "
        "scope" % (cache, res["caches"][0]["bytes_after"])]
    assert "failure" not in res and res["diff"]["before"].count("\n") == 4
