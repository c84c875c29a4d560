"""Root is never a lever for an unprivileged user (issue 10): the attacks of its "Why", tried in the lab.

One lab host (tools/lab/lab.sh, its own sshd, PID and mount namespaces), seeded by trust_seed.py with two victims
(alice, carol) and three unprivileged attackers: mallory's processes point cache variables at /etc, /usr/share,
/var/lib, /srv, /root and alice's home (also spelled //etc, ///usr//share/.), one of them setuid-like; trudy's
~/.config, ~/.cache and ~/.local are her own symlinks to /etc, /var/lib and /usr; eve's TMPDIR names carol's
residue. Then, as root over SSH, the real playbooks: `residue.purge.purge` (target open_autoglm) and
`residue.purge.prune` (every cache profile, everything older than 30 days: the decoys are from 2020).

What changed is measured on the whole host: a lab host's root is an overlay whose upper dir holds every byte the
host ever wrote, replaced or deleted (a deletion is a whiteout there), so `lab.sh snapshot` (sha256, mode and
owner of every entry of the upper dir) before and after a run is a checksum manifest of /etc, /usr/share,
/var/lib, /opt, /srv, /root and every home at once -- and of everything else. Each test asserts that nothing
changed outside the attacker's own files and the victims' real residue, and that the run's record names what
was refused (process, user, variable, path). One lab and two runs are shared by all tests (about two minutes).
"""
import glob
import json
import os
import subprocess
import tempfile
import uuid

import pytest

from conftest import REPO, ansible_env

LAB = "trustenv" + uuid.uuid4().hex[:2]
HOST = LAB + "-1"
LAB_SH = os.path.join(REPO, "tools", "lab", "lab.sh")
SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trust_seed.py")

VICTIM_RESIDUE = ("/home/alice/.cache/open-autoglm", "/home/alice/.config/open-autoglm",
                  "/home/carol/.cache/open-autoglm", "/home/carol/.config/open-autoglm")
ATTACKERS = ("/home/mallory", "/home/trudy", "/home/eve")
DECOYS = ("/etc/open-autoglm/system.yaml", "/var/lib/open-autoglm/state.db", "/usr/share/open-autoglm/README",
          "/var/lib/hub/checkpoints/resnet.pt", "/srv/datasets/old.csv", "/root/trustenv-hf/datasets/squad/data.arrow",
          "/root/.trustenv-cache/open-autoglm/root-session.db", "/var/lib/pip/http/ab/cd",
          "/var/lib/huggingface/datasets/x.arrow", "/usr/share/modelscope/m.bin",
          "/srv/models/hub/models--zai-org--AutoGLM-Phone-9B/blobs/" + "cd" * 32,
          "/srv/models/hub/models--BAAI--bge-small/blobs/" + "cd" * 32,
          "/root/trustenv-hf/hub/models--zai-org--AutoGLM-Phone-9B/blobs/" + "cd" * 32,
          "/var/lib/huggingface/hub/models--zai-org--AutoGLM-Phone-9B/blobs/" + "cd" * 32,
          "/home/alice/projects/thesis.tex", "/home/alice/keep/open-autoglm/notes.txt",
          "/home/alice/data/hub/weights.pt", "/home/alice/old-cache/pip/x")


def lab_sh(*args, timeout=120):
    return subprocess.run([LAB_SH, "--lab", LAB] + list(args), env=ansible_env(), check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


def snapshot():
    return json.loads(lab_sh("snapshot", timeout=300))[HOST]


def changed(before, after):
    """Every path whose entry differs (created, deleted, replaced, chmod/chown) between two snapshots."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def below(path, tops):
    return any(path == t or path.startswith(t + "/") for t in tops)


def adhoc(inventory, module, args, failing=False):
    """One task on the lab host as root: its registered result (failing: the task is to fail)."""
    with tempfile.TemporaryDirectory(prefix="trustlab-") as tmp:
        out = os.path.join(tmp, "result.json")
        play = [{"hosts": HOST, "gather_facts": False, "tasks": [
            dict([(module, args), ("register", "r"), ("ignore_errors", True)]),
            {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": out}, "delegate_to": "localhost"}]}]
        with open(os.path.join(tmp, "play.yml"), "w") as f:
            json.dump(play, f)
        proc = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(tmp, "play.yml")],
                              env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
        assert os.path.exists(out), proc.stdout[-4000:] + proc.stderr[-2000:]
        with open(out) as f:
            result = json.load(f)
    assert bool(result.get("failed")) == failing, result
    return result


def attackers_alive(lab):
    """Every attacker process is still there (a run without them would prove nothing)."""
    pids = sorted(lab["pids"].values())
    out = adhoc(lab["inventory"], "ansible.builtin.command", {"argv": ["ps", "-o", "pid=", "-p",
                                                                       ",".join(map(str, pids))]})["stdout"]
    assert sorted(int(p) for p in out.split()) == pids, "attacker processes gone: %s" % out


def playbook(lab, name, extra, report_dir):
    """ansible-playbook residue.purge.<name> on the lab host: (process, the host's JSON record, snapshot diff)."""
    attackers_alive(lab)
    before = snapshot()
    extra = dict(extra, residue_report_dir=str(report_dir))
    proc = subprocess.run(["ansible-playbook", "-i", lab["inventory"], "residue.purge." + name, "-e",
                           json.dumps(extra)], env=ansible_env(), capture_output=True, text=True, timeout=900,
                          check=False)
    records = [r for r in glob.glob(os.path.join(str(report_dir), "*", "hosts", HOST + ".json"))
               if not r.startswith(os.path.join(str(report_dir), "latest"))]
    assert len(records) == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    with open(records[0]) as f:
        record = json.load(f)
    after = snapshot()
    return {"proc": proc, "record": record, "changed": changed(before, after), "after": after,
            "problems": "\n".join(record.get("problems", []))}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network and mount namespaces); this test is part of make integration")
    tmp = tmp_path_factory.mktemp("trustlab")
    lab_sh("up", "1")
    try:
        inventory = lab_sh("inventory").strip()
        seeded = adhoc(inventory, "ansible.builtin.script", {"cmd": SEED, "executable": "/usr/bin/python3"})
        pids = json.loads(seeded["stdout"])["pids"]
        yield {"inventory": inventory, "pids": pids, "tmp": tmp}
    finally:
        lab_sh("down")


@pytest.fixture(scope="module")
def purged(lab):
    return playbook(lab, "purge", {"residue_targets": ["open_autoglm"]}, lab["tmp"] / "purge-report")


@pytest.fixture(scope="module")
def pruned(lab, purged):
    return playbook(lab, "prune", {}, lab["tmp"] / "prune-report")


def refused(run, pid, user, variable, value):
    text = "environment of process %d (user %s): %s=%s is not used: " % (pid, user, variable, value)
    assert text in run["problems"], "not reported: %r\nproblems:\n%s" % (text, run["problems"])


def assert_only(run, allowed):
    outside = [p for p in run["changed"] if not below(p, allowed)]
    assert not outside, "changed outside the residue and the attackers' own files: %s" % outside[:30]


def test_purge_under_attack_succeeds_and_changes_only_residue(purged):
    """eve's TMPDIR names carol's residue: the purge used to fail on the host (a 'protected directory'), for
    everyone. Now it completes, removes both victims' residue, and touches nothing else on the host."""
    assert purged["proc"].returncode == 0, purged["proc"].stdout[-4000:]
    assert purged["record"]["status"] == "ok", purged["record"]
    removed = set(p for p in purged["changed"] if below(p, VICTIM_RESIDUE))
    for residue in VICTIM_RESIDUE:
        assert any(below(p, [residue]) for p in removed), "%s was not removed" % residue
    assert_only(purged, VICTIM_RESIDUE + ATTACKERS)


def test_a_users_own_tmpdir_on_her_own_residue_fails_nobodys_purge(lab, purged):
    """eve's TMPDIR is her own ~/.cache/open-autoglm: her own default path is protected for her. The purge used
    to fail on the host for everyone (a 'protected directory' in a user's defaults); now her path is left out
    and named, and everyone else's residue goes (test_purge_under_attack_succeeds_and_changes_only_residue)."""
    assert purged["record"]["status"] == "ok", purged["record"]
    assert ("defaults of user eve: profile 'open_autoglm'" in purged["problems"]
            and "/home/eve/.cache/open-autoglm' is a protected directory, by the environment of user eve; left out"
            in purged["problems"]), purged["problems"]
    assert "/home/eve/.cache/open-autoglm/mine.db" not in purged["changed"]


def test_pip_remove_never_runs_as_root_on_a_record_a_user_wrote(lab, pruned):
    """mallory's distribution in the team's shared venv (root's, its site-packages writable by her group) lists
    the venv's bin/keepme in its RECORD. pip as root deleted it; now the distribution is refused, named, and
    nothing on the host changes (the task fails: the removal asked for did not happen)."""
    before = snapshot()
    result = adhoc(lab["inventory"], "residue.purge.pip_remove",
                   {"environments": ["/opt/teamvenv"], "packages": ["teamtool"]}, failing=True)
    assert changed(before, snapshot()) == []
    (entry,) = result["environments"]
    assert entry["status"] == "failed" and entry["removed"] == [], entry
    assert "teamtool: not removed" in entry["error"] and "can be written by others than root" in entry["error"]


def test_tmpdir_of_another_user_neither_blocks_nor_protects(lab, purged, pruned):
    refused(purged, lab["pids"]["eve_dos"], "eve", "TMPDIR", "/home/carol/.cache/open-autoglm")
    assert "owned by carol, not by eve" in purged["problems"]
    assert "/home/carol/.cache/open-autoglm/session.db" in purged["changed"]
    assert pruned["record"]["status"] == "ok", pruned["record"]


@pytest.mark.parametrize("variable, value", [
    ("XDG_CACHE_HOME", "/etc"), ("XDG_CONFIG_HOME", "/var/lib"), ("XDG_DATA_HOME", "/usr/share"),
    ("MODELSCOPE_CACHE", "/usr/share/zoneinfo"), ("PIP_CACHE_DIR", "/usr/share/doc"), ("TORCH_HOME", "/var/lib"),
    ("HF_HOME", "/root/trustenv-hf"), ("TMPDIR", "/var/lib")])
def test_cache_variables_at_system_directories_are_refused(lab, purged, pruned, variable, value):
    for run in (purged, pruned):
        refused(run, lab["pids"]["mallory_system"], "mallory", variable, value)
        assert not [p for p in run["changed"] if below(p, ["/etc", "/usr", "/var", "/srv", "/root", "/opt"])]


def test_cache_variables_at_root_home_are_refused(lab, purged, pruned):
    for run in (purged, pruned):
        for variable, value in (("XDG_CACHE_HOME", "/root/.trustenv-cache"), ("HF_HOME", "/root/trustenv-hf"),
                                ("TMPDIR", "/root")):
            refused(run, lab["pids"]["mallory_root"], "mallory", variable, value)
        assert not [p for p in run["changed"] if below(p, ["/root"])]


def test_cache_variables_at_another_users_home_are_refused(lab, purged, pruned):
    for run in (purged, pruned):
        for variable, rel in (("XDG_CACHE_HOME", "keep"), ("PIP_CACHE_DIR", "old-cache/pip"),
                              ("TORCH_HOME", "data"), ("MODELSCOPE_CACHE", "projects")):
            refused(run, lab["pids"]["mallory_alice"], "mallory", variable, "/home/alice/" + rel)
        assert not [p for p in run["changed"] if below(p, ["/home/alice/" + d for d in
                                                           ("keep", "old-cache", "data", "projects")])]


@pytest.mark.parametrize("variable, value", [
    ("XDG_CACHE_HOME", "//etc"), ("MODELSCOPE_CACHE", "//srv"), ("PIP_CACHE_DIR", "//var/lib/pip"),
    ("XDG_DATA_HOME", "///usr//share/."), ("TMPDIR", "//etc")])
def test_spellings_of_system_directories_are_refused(lab, purged, pruned, variable, value):
    """posixpath.normpath keeps a leading '//': '//srv' used to pass the protected-path check."""
    for run in (purged, pruned):
        refused(run, lab["pids"]["mallory_spelled"], "mallory", variable, value)
        assert not [p for p in run["changed"] if below(p, ["/etc", "/srv", "/usr", "/var"])]


def test_a_system_hub_cache_named_by_a_user_keeps_its_models(lab, purged, pruned):
    """mallory's HF_HUB_CACHE names root's /srv/models/hub: the purge would drop AutoGLM from it, the prune
    every old model. Refused; '..' in a value is refused outright."""
    for run in (purged, pruned):
        refused(run, lab["pids"]["mallory_hub"], "mallory", "HF_HUB_CACHE", "/srv/models/hub")
        assert "TMPDIR=/srv/models/hub/.. is not used: " in run["problems"] and "must not contain '..'" in run["problems"]
        assert not [p for p in run["changed"] if below(p, ["/srv"])]


def test_a_setuid_process_lends_no_root_authority(lab, purged, pruned):
    pid = lab["pids"]["mallory_setuid"]
    for run in (purged, pruned):
        assert "environment of process %d (real uid " % pid in run["problems"]
        assert "effective uid 0) is not used" in run["problems"]
        assert not [p for p in run["changed"] if below(p, ["/usr/share/modelscope", "/etc"])]


def test_own_symlinks_to_root_directories_are_not_followed(purged, pruned):
    """trudy's ~/.config -> /etc, ~/.cache -> /var/lib, ~/.local -> /usr: {user_config}/open-autoglm would be
    /etc/open-autoglm, {pip_cache} /var/lib/pip, her HF hub cache root's /var/lib/huggingface/hub (whose AutoGLM
    the purge would drop). Refused, named, and the runs still succeed."""
    for run, links in ((purged, (".config", ".cache", ".local")), (pruned, (".cache",))):
        assert run["record"]["status"] == "ok", run["record"]
        for link in links:
            assert "/home/trudy/%s is a symlink owned by trudy" % link in run["problems"], run["problems"]
        # her default HF hub cache (~/.cache/huggingface/hub) is really root's /var/lib/huggingface/hub
        assert ("HF hub cache of user trudy (default) is not used: /home/trudy/.cache/huggingface/hub is "
                "/var/lib/huggingface/hub: /var/lib/huggingface/hub is owned by root, not by trudy") in run["problems"]
        assert not [p for p in run["changed"] if below(p, ["/etc", "/var", "/usr", "/home/trudy"])]


def test_prune_with_the_attackers_environment_prunes_only_what_it_should(pruned):
    """The default prune (every cache profile, older than 30 days) with every attacker's process running: alice's
    own old pip cache goes; every decoy (system directories, /root, alice's other data) is still there."""
    assert pruned["proc"].returncode == 0, pruned["proc"].stdout[-4000:]
    assert "/home/alice/.cache/pip/http/ab/cd" in pruned["changed"]
    assert_only(pruned, ("/home/alice/.cache/pip",) + ATTACKERS)
    # every decoy was seeded (so it is in the upper dir) and is still there, byte for byte
    assert [d for d in DECOYS if d not in pruned["after"] or d in pruned["changed"]] == []
