"""residue.purge.hf_cache through real ansible-playbook on real generated hub caches."""
import os
import shutil
import subprocess
import sys
import time

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                ".build", "collections"))
from ansible_collections.residue.purge.tests.unit.support import hfgen  # noqa: E402
from conftest import run_tasks  # noqa: E402


@pytest.fixture
def cache(tmp_path):
    root = str(tmp_path / "hub")
    made = hfgen.make_cache(root, repos=4, revisions_per_repo=2, files_per_revision=6, seed=31)
    made.append(hfgen.add_repo(root, "zai-org/AutoGLM-Phone-9B", "model", revisions=2))
    made.append(hfgen.add_repo(root, "zai-org/AutoGLM-Other", "model", revisions=1))
    return root, made


def listing(root):
    return hfgen.tree_listing(root)


def test_check_mode_plans_exactly_and_changes_nothing(module_runner, cache):
    root, made = cache
    before = listing(root)
    res = module_runner("hf_cache", {"cache_dirs": [root], "repos": ["zai-org/AutoGLM-*"]}, check=True, diff=True)
    assert res["changed"] is True and not res.get("failed") is True, res
    assert listing(root) == before
    assert sorted(d["repo_id"] for d in res["deleted"]) == ["zai-org/AutoGLM-Other", "zai-org/AutoGLM-Phone-9B"]
    assert all(d["whole_repo"] for d in res["deleted"])
    assert "--- before" in res["_stdout"] and "AutoGLM-Phone-9B@" in res["_stdout"]
    planned = res["freed_bytes"]

    # the real run and the second one in one ansible-playbook (the second changes nothing: asserted below)
    step = {"module": "hf_cache", "args": {"cache_dirs": [root], "repos": ["zai-org/AutoGLM-*"]}}
    real, again = run_tasks([step, step])
    assert real["changed"] is True and real["freed_bytes"] == planned
    assert [d["repo_id"] for d in real["deleted"]] == [d["repo_id"] for d in res["deleted"]]
    names = os.listdir(root)
    assert not any("AutoGLM-Phone" in n or "AutoGLM-Other" in n for n in names)
    assert not any("zai-org" in n for n in os.listdir(os.path.join(root, ".locks")))
    # the other repos are intact, by huggingface_hub's own scan
    info = huggingface_hub.scan_cache_dir(root)
    assert not info.warnings and len(info.repos) == 4
    assert again["changed"] is False and again["deleted"] == []


def test_targets_profile_patterns_and_freed_bytes_match_huggingface_hub(module_runner, cache):
    root, made = cache
    info = huggingface_hub.scan_cache_dir(root)
    want = [r for r in info.repos if r.repo_id.startswith("zai-org/AutoGLM-")]
    expected = info.delete_revisions(*[rev.commit_hash for r in want for rev in r.revisions]).expected_freed_size
    res = module_runner("hf_cache", {"cache_dirs": [root], "targets": ["open_autoglm"]})
    assert res["changed"] and res["freed_bytes"] == expected
    assert res["blobs_deleted"] == sum(r.nb_files for r in want)


def test_download_in_progress_is_held_back_with_a_warning(module_runner, cache, tmp_path):
    root, made = cache
    target = made[-2]  # zai-org/AutoGLM-Phone-9B
    lock = hfgen.lock_path(root, target, "e" * 64)
    code = ("import time\nfrom filelock import FileLock\nl = FileLock(%r)\nl.acquire()\n"
            "print('ready', flush=True)\ntime.sleep(120)\n" % lock)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = listing(target.path)
        res = module_runner("hf_cache", {"cache_dirs": [root], "repos": ["zai-org/AutoGLM-*"]})
        assert res["changed"] is True
        assert [d["repo_id"] for d in res["deleted"]] == ["zai-org/AutoGLM-Other"]
        assert [(h["repo_id"], h["reason"]) for h in res["held_back"]] == [("zai-org/AutoGLM-Phone-9B", "locked")]
        assert "skipped" not in res or res["skipped"] is False
        assert any("held back" in w for w in res.get("warnings", []))
        assert listing(target.path) == before
        forced = module_runner("hf_cache", {"cache_dirs": [root], "repos": ["zai-org/AutoGLM-*"], "force": True})
        assert [d["repo_id"] for d in forced["deleted"]] == ["zai-org/AutoGLM-Phone-9B"]
    finally:
        holder.kill()
        holder.wait()


def test_budget_and_keep(module_runner, tmp_path):
    root = str(tmp_path / "hub")
    now = time.time()
    for i, repo_id in enumerate(["keep/base", "old/one", "new/one"]):
        repo = hfgen.add_repo(root, repo_id, "model", revisions=1, files_per_revision=4)
        stamp = now - [5000, 3000, 100][i]
        for name in os.listdir(os.path.join(repo.path, "blobs")):
            os.utime(os.path.join(repo.path, "blobs", name), (stamp, stamp))
    res = module_runner("hf_cache", {"cache_dirs": [root], "max_size": "0", "keep": ["keep/*"]}, check=True)
    assert sorted(d["repo_id"] for d in res["deleted"]) == ["new/one", "old/one"]  # both go, keep/base stays
    assert all(d["reason"] == ["budget"] for d in res["deleted"])
    (summary,) = res["caches"]
    assert summary["over_budget"] and summary["kept_over_budget"] == ["keep/base"]
    assert any("over its budget" in w for w in res.get("warnings", []))


def test_windows_style_cache(module_runner, tmp_path):
    root = str(tmp_path / "hub")
    made = hfgen.make_cache(root, repos=2, windows_style=True, seed=4, ref_fraction=0.0)
    theirs = str(tmp_path / "theirs")
    shutil.copytree(root, theirs, symlinks=True)
    commits = [r.commits[0] for r in made]
    strategy = huggingface_hub.scan_cache_dir(theirs).delete_revisions(*commits)
    strategy.execute()
    res = module_runner("hf_cache", {"cache_dirs": [root], "revisions": "unreferenced"})
    assert res["freed_bytes"] == strategy.expected_freed_size
    assert listing(root) == listing(theirs)


# every rejected option is covered in tests/unit/plugins/module_utils/test_hfcache_options.py; these go end to end
BAD_INPUT = [
    ({"older_than": "banana"}, "older_than"),
    ({"revisions": "all"}, "would empty every cache"),
    ({"cache_dirs": ["/"]}, "absolute"),
    ({"targets": ["no_such_profile"]}, "no_such_profile"),
]


def test_bad_input_fails_clearly_and_deletes_nothing(module_batch_runner, cache):
    """Every case in one ansible-playbook (a task each) on one cache: nothing of it may go."""
    root, made = cache
    before = listing(root)
    cases = []
    for args, _message in BAD_INPUT:
        params = {"cache_dirs": [root], "repos": ["*"]}
        params.update(args)
        if "revisions" in args:
            params.pop("repos")
        cases.append(params)
    results = module_batch_runner("hf_cache", cases)
    assert len(results) == len(BAD_INPUT)
    for res, (args, message) in zip(results, BAD_INPUT):
        assert res.get("failed") is True, (args, res)
        assert message in res["msg"] and "Traceback" not in res["msg"], (args, res["msg"])
    assert listing(root) == before


def test_missing_and_broken_caches_are_reported(module_runner, tmp_path):
    root = str(tmp_path / "hub")
    made = hfgen.make_cache(root, repos=2, seed=8)
    hfgen.add_missing_ref(made[0])
    hfgen.add_broken_symlink(made[1])
    res = module_runner("hf_cache", {"cache_dirs": [root, str(tmp_path / "nope")], "older_than": "100000d"})
    assert res["changed"] is False and not res.get("failed")
    text = "\n".join(res["problems"])
    assert "does not exist" in text and "missing snapshot" in text and "broken snapshot link" in text


def test_default_caches_are_found_through_the_users_homes(module_runner, tmp_path):
    """No cache_dirs: the cache under a home (and one under that user's HF_HOME) is found and worked on.

    The repo name is unique to this test, so any other cache the discovery finds on this machine (other
    users, other processes' HF_HOME) has nothing that matches, and check mode comes first.
    """
    home = tmp_path / "home"
    default_root = str(home / ".cache" / "huggingface" / "hub")
    unique = "hftest-%d/model-%d" % (os.getpid(), int(time.time()))
    repo = hfgen.add_repo(default_root, unique, "model", revisions=1)
    env_root = str(tmp_path / "hfhome" / "hub")
    other = hfgen.add_repo(env_root, unique, "model", revisions=1)
    args = {"homes": [str(home)], "repos": [unique]}
    res = module_runner("hf_cache", args, check=True, env={"HF_HOME": str(tmp_path / "hfhome")})
    assert sorted(d["cache"] for d in res["deleted"]) == sorted([default_root, env_root]), res
    assert os.path.isdir(repo.path) and os.path.isdir(other.path)
    res = module_runner("hf_cache", args, env={"HF_HOME": str(tmp_path / "hfhome")})
    assert res["changed"] and not os.path.exists(repo.path) and not os.path.exists(other.path)


OLDEST_PYTHON = "/root/.pyenv/versions/3.8.18/bin/python"


@pytest.mark.skipif(not os.access(OLDEST_PYTHON, os.X_OK), reason="no Python 3.8 interpreter on this machine")
def test_runs_on_the_oldest_supported_python(module_runner, cache):
    root, made = cache
    res = module_runner("hf_cache", {"cache_dirs": [root], "repos": ["zai-org/AutoGLM-*"]}, interpreter=OLDEST_PYTHON)
    assert res["changed"] and not res.get("failed"), res
    assert sorted(d["repo_id"] for d in res["deleted"]) == ["zai-org/AutoGLM-Other", "zai-org/AutoGLM-Phone-9B"]
