"""The playbooks run the way AWX runs a job: through ansible-runner, from a private data dir built like AWX's.

Two lab hosts (tools/lab/lab.sh, own lab name) seeded with the Open-AutoGLM installation as molecule/default does.
Each job's private data dir holds project/ (the git-tracked tree, as an SCM checkout), inventory/ (the lab hosts),
env/extravars (the job template's survey answers, turned into variables as AWX does), env/cmdline (--check for a
check job, --become for become_enabled). Asserted on ansible-runner's artifacts: status, rc, job events, and the
set_stats artifact (residue_summary) against the fleet report the same run wrote.
The jobs run in order, as the workflow does: the audit node (a check job), then the purge node with the audit's
artifacts passed on as extra variables.
"""
import json
import os
import shutil
import subprocess

import ansible_runner
import pytest
import yaml

from conftest import COLLECTIONS, REPO, ansible_env

LAB = "awxr%d" % (os.getpid() % 100000)
LAB_SH = os.path.join(REPO, "tools", "lab", "lab.sh")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network and mount namespaces)")


def templates():
    with open(os.path.join(REPO, "awx", "controller.yml")) as f:
        data = yaml.safe_load(f)
    return {jt["name"]: jt for jt in data["residue_awx_job_templates"]}


def survey_extra_vars(survey, answers):
    """Extra variables AWX builds from survey answers: answers checked against the questions, defaults filled in
    for unanswered questions, a multiselect answer is a list."""
    questions = {q["variable"]: q for q in survey["spec"]}
    unknown = set(answers) - set(questions)
    assert not unknown, "not asked by the survey: %s" % unknown
    out = {}
    for var, q in questions.items():
        if var in answers:
            value = answers[var]
        elif q.get("default", "") != "":
            value = q["default"]
        else:
            assert not q["required"], "required question %s unanswered" % var
            continue
        if q["type"] == "multiselect":
            value = value if isinstance(value, list) else [v for v in value.splitlines() if v]
            assert set(value) <= set(q["choices"]), (var, value)
        elif q["type"] == "multiplechoice":
            assert value in q["choices"], (var, value)
        elif q["type"] == "integer":
            value = int(value)
        out[var] = value
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    env = ansible_env()
    subprocess.run([LAB_SH, "--lab", LAB, "up", "2"], env=env, check=True, capture_output=True, timeout=120)
    try:
        inventory = subprocess.run([LAB_SH, "--lab", LAB, "inventory"], env=env, check=True, capture_output=True,
                                   text=True).stdout.strip()
        seed = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(REPO, "tools", "lab", "seed.yml")],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert seed.returncode == 0, seed.stdout[-3000:] + seed.stderr[-2000:]
        project = tmp_path_factory.mktemp("project")
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                               capture_output=True).stdout
        subprocess.run(["rsync", "-a", "--from0", "--files-from=-", "./", str(project)], cwd=REPO, input=files,
                       check=True)
        yield {"inventory": inventory, "project": str(project), "reports": tmp_path_factory.mktemp("reports")}
    finally:
        subprocess.run([LAB_SH, "--lab", LAB, "down"], env=env, check=False, capture_output=True, timeout=120)


def run_job(lab, tmp_path, template, answers, artifacts=None):
    """One AWX job: the private data dir AWX would write, run by ansible-runner."""
    jt = templates()[template]
    pdd = tmp_path / ("pdd-" + template.split()[-1])
    (pdd / "env").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    os.symlink(lab["project"], str(pdd / "project"))
    shutil.copy(lab["inventory"], str(pdd / "inventory" / "hosts.yml"))
    extra = survey_extra_vars(jt["survey_spec"], answers)
    extra.update(artifacts or {})  # a workflow passes the previous node's artifacts on as extra variables
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extra))
    # AWX's job type "check" (set on the template or answered at launch) is --check; become_enabled is --become
    cmdline = (["--check"] if jt["job_type"] == "check" else []) + (["--become"] if jt["become_enabled"] else [])
    (pdd / "env" / "cmdline").write_text(" ".join(cmdline))
    env = {k: v for k, v in ansible_env().items() if k.startswith("ANSIBLE_") or k in ("PATH", "PYTHONPATH", "HOME")}
    env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS  # in AWX: the collections installed in the execution environment
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    result = ansible_runner.run(private_data_dir=str(pdd), playbook=jt["playbook"], ident="job", quiet=True,
                                timeout=900)
    events = list(result.events)
    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1, [e["event"] for e in events][-5:]
    return result, events, stats[0]["event_data"]["artifact_data"]


def fleet_of(summary):
    with open(os.path.join(summary["report_dir"], "fleet.json")) as f:
        return json.load(f)


def assert_summary_is_the_report(summary, hosts):
    """The artifact's figures are the fleet report's, host by host."""
    fleet = fleet_of(summary)
    for key in ("hosts", "found_bytes", "freed_bytes", "stopped", "removed_items", "status_counts"):
        assert summary[key] == fleet["summary"][key], key
    assert summary["failures"] == len(fleet["summary"]["failures"])
    records = {r["host"]: r for r in fleet["hosts"]}
    assert set(records) == set(summary["by_host"]) == set(hosts)
    for host, record in records.items():
        mine = summary["by_host"][host]
        assert mine["status"] == record["status"]
        assert mine["freed_bytes"] == record["freed_bytes"]
        assert mine["found_bytes"] == record["found"]["total_bytes"]
        assert mine["stopped"] == len(record["stopped"])
        assert mine["held_back"] == len(record["held_back"])
    assert summary["held_back"] == sum(len(r["held_back"]) for r in records.values())
    assert summary["run_id"] == fleet["run"]["run_id"]
    return records


def host_paths_exist(lab, paths):
    proc = subprocess.run(["ansible", "-i", lab["inventory"], "all", "-m", "ansible.builtin.stat", "-a",
                           "path=%s" % paths[0], "-o"], env=ansible_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.stdout.count('"exists": true'), proc.stdout


HOSTS = ["%s-1" % LAB, "%s-2" % LAB]
TARGET_CACHE = "/home/alice/.cache/open-autoglm"


def test_audit_node_is_a_check_job_that_previews_and_changes_nothing(lab, tmp_path):
    result, events, artifact = run_job(lab, tmp_path, "residue.purge audit", answers={
        "residue_targets": ["open_autoglm"], "residue_report_dir": str(lab["reports"])})
    assert "--check" in (tmp_path / "pdd-audit" / "env" / "cmdline").read_text()
    assert (result.status, result.rc) == ("successful", 0)
    summary = artifact["residue_summary"]
    assert summary["playbook"] == "audit" and summary["check_mode"] is True
    assert summary["status_counts"] == {"preview": 2}
    assert summary["failures"] == 0
    assert summary["found_bytes"] > 2 * 5 * 1024 * 1024
    records = assert_summary_is_the_report(summary, HOSTS)
    # check mode stops nothing: the daemon still holds the system cache's repo open, so it is held back
    assert summary["held_back"] == 2 and all(r["held_back"] for r in records.values())
    assert summary["by_target"]["open_autoglm"]["found_bytes"] > 0
    assert not [e for e in events if e["event"] == "runner_on_failed"]
    plays = [e["event_data"]["play"] for e in events if e["event"] == "playbook_on_play_start"]
    assert plays == ["Audit AI-model residue", "Report"]
    module_events = [e for e in events if e["event"] == "runner_on_ok"
                     and e["event_data"].get("task_action", "").startswith("residue.purge.")]
    checks = [e["event_data"]["host"] for e in module_events if e["event_data"]["task_action"] == "residue.purge.check_vars"]
    # the playbook's variables once for the run (run_once, reported under the first host), then each host's own
    assert len(checks) == len(HOSTS) + 1 and set(checks) == set(HOSTS), checks
    for host in HOSTS:
        ran = sorted(e["event_data"]["task_action"][len("residue.purge."):] for e in module_events
                     if e["event_data"]["host"] == host and e["event_data"]["task_action"] != "residue.purge.check_vars")
        # a preview discovers once (verify does not rediscover what was not removed)
        assert ran == ["autostart", "discover", "hf_cache", "open_deleted", "pip_remove", "reap", "remove"], (host, ran)
    exists, out = host_paths_exist(lab, [TARGET_CACHE])
    assert exists == 2, out
    pytest.audit_artifact = artifact  # the workflow's next node gets it


def test_purge_node_after_approval(lab, tmp_path):
    passed_on = getattr(pytest, "audit_artifact", None)
    result, events, artifact = run_job(lab, tmp_path, "residue.purge purge", artifacts=passed_on, answers={
        "residue_targets": ["open_autoglm"], "residue_report_dir": str(lab["reports"]),
        "residue_backup_dir": "/var/backups/residue"})
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()[-3000:]
    summary = artifact["residue_summary"]
    assert summary["check_mode"] is False and summary["playbook"] == "purge"
    assert summary["status_counts"] == {"ok": 2}
    assert summary["failures"] == 0 and summary["first_failures"] == []
    records = assert_summary_is_the_report(summary, HOSTS)
    assert summary["freed_bytes"] > 2 * 5 * 1024 * 1024
    assert summary["by_target"]["open_autoglm"]["freed_bytes"] == summary["freed_bytes"]
    for host in HOSTS:
        assert summary["by_host"][host]["stopped"] >= 1  # the daemon and its supervisor
        assert records[host]["verified"]["clean"] is True
    if passed_on:  # the audit's artifact was an extra variable of this job and did not mask its own summary
        assert summary["run_id"] != passed_on["residue_summary"]["run_id"]
    changed = {e["event_data"]["host"] for e in events if e["event"] == "runner_on_ok"
               and e["event_data"].get("task_action") == "residue.purge.remove" and e["event_data"]["res"]["changed"]}
    assert changed == set(HOSTS)
    exists, out = host_paths_exist(lab, [TARGET_CACHE])
    assert exists == 0, out
