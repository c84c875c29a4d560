"""residue.purge.ollama_models and residue.purge.modelscope_models through real Ansible: check mode plans exactly what
the real run does, diff mode shows it, a second run changes nothing, bad input fails cleanly."""
import os

from conftest import run_tasks
from ansible_collections.residue.purge.tests.unit.support import ollamagen as og


def test_ollama_models_check_diff_real_and_again(tmp_path):
    store = str(tmp_path / "models")
    og.model(store, "llama3:8b", [b"c1", ("license", b"L" * 500), b"W" * 4000])
    og.model(store, "qwen:7b", [b"c2", ("license", b"L" * 500), b"Q" * 3000])
    args = {"models_dirs": [store], "models": ["llama3"], "scan_processes": False}
    # two ansible-playbook runs, not five: what changes nothing (the listing, check mode), then what may
    listed, check = run_tasks([{"module": "ollama_models", "args": {"models_dirs": [store], "scan_processes": False}},
                               {"module": "ollama_models", "args": args, "check_mode": True}], diff=True)
    assert not listed.get("failed") and listed["changed"] is False
    assert sorted(m["name"] for m in listed["models"]) == ["llama3:8b", "qwen:7b"]
    assert check["changed"] is True and "llama3:8b" in check["diff"]["before"]
    assert "llama3:8b" not in check["diff"]["after"] and "qwen:7b" in check["diff"]["after"]
    assert len(og.blob_names(store)) == 5
    real, again, bad = run_tasks([{"module": "ollama_models", "args": args}, {"module": "ollama_models", "args": args},
                                  {"module": "ollama_models", "args": dict(args, max_size="lots")}])
    assert real["changed"] is True and real["removed"] == check["removed"]
    assert again["changed"] is False and again["removed"] == []
    assert real["freed_bytes"] == 2 + 4000 and len(og.blob_names(store)) == 3
    assert bad.get("failed") and "max_size" in bad["msg"]


def test_modelscope_models_check_real_and_again(module_runner, tmp_path):
    cache = str(tmp_path / "hub")
    for rel in ("models/qwen/Qwen2___5-7B/model.bin", "models/damo/bert/model.bin"):
        os.makedirs(os.path.dirname(os.path.join(cache, rel)))
        with open(os.path.join(cache, rel), "wb") as f:
            f.write(b"x" * 5000)
    args = {"cache_dirs": [cache], "models": ["qwen/Qwen2.5-7B"], "scan_processes": False}
    check = module_runner("modelscope_models", args, check=True, diff=True)
    assert check["changed"] is True and "qwen/Qwen2.5-7B" in check["diff"]["before"]
    assert os.path.isdir(os.path.join(cache, "models/qwen/Qwen2___5-7B"))
    real, again = run_tasks([{"module": "modelscope_models", "args": args}] * 2)  # one ansible-playbook
    assert [r["model_id"] for r in real["removed"]] == ["qwen/Qwen2.5-7B"]
    assert again["changed"] is False
    assert not os.path.exists(os.path.join(cache, "models/qwen/Qwen2___5-7B"))
    assert os.path.isfile(os.path.join(cache, "models/damo/bert/model.bin"))
