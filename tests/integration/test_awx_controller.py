"""awx/: the job templates, surveys and workflow as awx/apply.yml hands them to awx.awx's modules.

No AWX server: each awx.awx module file is imported and its argument spec read from its own main(); apply.yml's
module arguments are rendered with Ansible's templating for every loop item and validated against that spec
(ansible-core's ArgumentSpecValidator, as the module would on start). Workflow nodes are checked against the
suboptions the module documents, surveys against AWX's survey rules, and survey variables against the playbooks.
"""
import importlib
import os
import re
import subprocess

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from conftest import REPO, ansible_env

AWX = os.path.join(REPO, "awx")
# what a user passes on the command line (apply.yml's header)
INPUTS = {"residue_awx_url": "https://awx.example.com", "residue_awx_token": "t0ken",
          "residue_awx_inventory": "GPU fleet", "residue_awx_credentials": ["GPU fleet ssh"],
          "residue_awx_project_url": "https://git.example.com/ops/residue-purge.git",
          "residue_awx_ee_image": "registry.example.com/residue-purge-ee:0.2.0"}
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": float}


class _Captured(Exception):
    pass


def _capture(argument_spec=None, **kwargs):
    raise _Captured(argument_spec, kwargs)


def module_spec(name):
    """(argument_spec, validator kwargs) of awx.awx.<name>: what its main() hands to ControllerAPIModule."""
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    from ansible_collections.awx.awx.plugins.module_utils.controller_api import ControllerModule
    real = module.ControllerAPIModule
    module.ControllerAPIModule = _capture
    try:
        with pytest.raises(_Captured) as captured:
            module.main()
    finally:
        module.ControllerAPIModule = real
    argument_spec, kwargs = captured.value.args
    spec = dict(ControllerModule.AUTH_ARGSPEC)  # ControllerModule.__init__ adds these to every module
    spec.update(argument_spec)
    checks = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
    return spec, {k: v for k, v in kwargs.items() if k in checks}


def validate(module, params):
    spec, kwargs = module_spec(module)
    result = ArgumentSpecValidator(spec, **kwargs).validate(params)
    return [str(e) for e in result.errors]


def doc_spec(options):
    """An argument spec from a module's documented options (type, choices, required, suboptions...)."""
    out = {}
    for name, doc in options.items():
        entry = {k: doc[k] for k in ("type", "elements", "choices", "required", "default", "aliases") if k in doc}
        if "suboptions" in doc:
            entry["options"] = doc_spec(doc["suboptions"])
        out[name] = entry
    return out


def documented_options(module):
    mod = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + module)
    return yaml.safe_load(mod.DOCUMENTATION)["options"]


@pytest.fixture(scope="module")
def apply_play():
    loader = DataLoader()
    plays = loader.load_from_file(os.path.join(AWX, "apply.yml"), trusted_as_template=True)
    assert len(plays) == 1
    play = plays[0]
    variables = {}
    for vars_file in play["vars_files"]:
        variables.update(loader.load_from_file(os.path.join(AWX, vars_file), trusted_as_template=True))
    variables.update(play["vars"])
    variables.update(INPUTS)
    return loader, play, variables


@pytest.fixture(scope="module")
def data():
    with open(os.path.join(AWX, "controller.yml")) as f:
        return yaml.safe_load(f)


def rendered_calls(apply_play):
    """(module, task, item, params) for every awx.awx call apply.yml makes, params as the module receives them."""
    loader, play, variables = apply_play
    defaults = play["module_defaults"]["group/awx.awx.controller"]
    calls = []
    for task in play["tasks"]:
        modules = [k for k in task if k.startswith("awx.awx.")]
        if not modules:
            continue
        module = modules[0][len("awx.awx."):]
        items = Templar(loader=loader, variables=variables).template(task["loop"]) if "loop" in task else [None]
        assert items, "%s loops over nothing" % task["name"]
        for item in items:
            templar = Templar(loader=loader, variables=dict(variables, item=item))
            params = dict(templar.template(defaults))
            params.update(templar.template(task[modules[0]]))
            calls.append((module, task, item, params))
    return calls


def test_every_call_of_apply_yml_passes_the_module_argument_spec(apply_play):
    calls = rendered_calls(apply_play)
    modules = sorted(set(c[0] for c in calls))
    assert modules == ["execution_environment", "job_template", "project", "workflow_job_template"]
    assert len([c for c in calls if c[0] == "job_template"]) == 4
    for module, task, item, params in calls:
        assert validate(module, params) == [], (task["name"], item and item.get("name"))
        assert params["controller_host"] == INPUTS["residue_awx_url"]


def test_apply_yml_hands_every_key_of_the_data_to_the_module(apply_play):
    for module, task, item, params in rendered_calls(apply_play):
        if item is None:
            continue
        raw = str(task["awx.awx." + module])
        dropped = [key for key in item if not re.search(r"\bitem\.%s\b" % key, raw)]
        assert dropped == [], "%s: data keys the task never passes: %s" % (task["name"], dropped)


def test_the_validation_itself_can_fail():
    assert any("job_typ" in e for e in validate("job_template", {"name": "x", "job_typ": "run"}))
    assert validate("job_template", {"name": "x", "job_type": "sideways"})
    assert validate("workflow_job_template", {"name": "x", "workflow_nodes": "audit"})
    assert check_survey({"name": "s", "description": "", "spec": [
        {"question_name": "q", "variable": "v", "required": True, "type": "multiplechoice", "choices": ["a"],
         "default": "b"}]})


def check_survey(survey):
    """AWX's rules for a survey spec (api/views JobTemplateSurveySpec): a list of problems."""
    problems = []
    for key, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(survey.get(key), kind):
            problems.append("survey %s: expected %s" % (key, kind.__name__))
    if problems or not survey["spec"]:
        return problems or ["survey has no questions"]
    seen = set()
    for idx, q in enumerate(survey["spec"]):
        where = "question %d (%s)" % (idx, q.get("variable"))
        for key, kind in (("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(q.get(key), kind):
                problems.append("%s: %s must be %s" % (where, key, kind.__name__))
        if q.get("variable") in seen:
            problems.append("%s: variable repeated" % where)
        seen.add(q.get("variable"))
        qtype = q.get("type")
        if qtype not in SURVEY_TYPES:
            problems.append("%s: type %r" % (where, qtype))
            continue
        if q.get("default", "") != "" and not isinstance(q["default"], SURVEY_TYPES[qtype]):
            problems.append("%s: default %r is not %s" % (where, q["default"], qtype))
        for key in ("min", "max"):
            if q.get(key) is not None and not isinstance(q[key], int):
                problems.append("%s: %s must be an integer" % (where, key))
        if qtype in ("multiplechoice", "multiselect"):
            choices = q.get("choices")
            if not choices:
                problems.append("%s: no choices" % where)
                continue
            choices = choices.splitlines() if isinstance(choices, str) else choices
            defaults = q.get("default", "")
            defaults = [d for d in defaults.splitlines() if d.strip()] if isinstance(defaults, str) else defaults
            if qtype == "multiplechoice" and len(defaults) > 1:
                problems.append("%s: one default only" % where)
            if [d for d in defaults if d not in choices]:
                problems.append("%s: default not among the choices" % where)
        if qtype in ("text", "textarea") and isinstance(q.get("default"), str) and q["default"]:
            if not q.get("min", 0) <= len(q["default"]) <= q.get("max", 1 << 20):
                problems.append("%s: default outside min/max length" % where)
    return problems


def surveys(data):
    for jt in data["residue_awx_job_templates"] + data["residue_awx_workflow_job_templates"]:
        yield jt["name"], jt["survey_spec"]


def test_surveys_follow_awx_rules(data):
    names = []
    for name, survey in surveys(data):
        names.append(name)
        assert check_survey(survey) == [], name
    assert len(names) == 5


def test_survey_variables_are_the_playbooks_variables(data):
    from ansible_collections.residue.purge.plugins.module_utils._profiles import load_profiles
    known = set()
    for root, _dirs, files in os.walk(os.path.join(REPO, "roles")):
        for f in files:
            if f.endswith(".yml"):
                with open(os.path.join(root, f)) as fh:
                    known.update(re.findall(r"\bresidue_\w+", fh.read()))
    for jt in data["residue_awx_job_templates"]:
        with open(os.path.join(REPO, jt["playbook"])) as f:
            playbook = f.read()
        for q in jt["survey_spec"]["spec"]:
            assert q["variable"] in playbook or q["variable"] in known, (jt["name"], q["variable"])
            if q["variable"] == "residue_targets":
                assert sorted(q["choices"]) == sorted(load_profiles()), "targets = the built-in profiles"
    purge = [jt for jt in data["residue_awx_job_templates"] if jt["playbook"] == "playbooks/purge.yml"][0]
    assert [q for q in purge["survey_spec"]["spec"] if q["variable"] == "residue_targets"][0]["required"] is True


def test_workflow_is_audit_then_approval_then_purge(data):
    node_spec = doc_spec(documented_options("workflow_job_template")["workflow_nodes"]["suboptions"])
    templates = {jt["name"]: jt for jt in data["residue_awx_job_templates"]}
    (workflow,) = data["residue_awx_workflow_job_templates"]
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    assert len(nodes) == len(workflow["workflow_nodes"])
    for node in workflow["workflow_nodes"]:
        result = ArgumentSpecValidator(node_spec).validate(node)
        assert [str(e) for e in result.errors] == [], node["identifier"]
        ujt = node["unified_job_template"]  # the module indexes name and type directly
        assert ujt["name"] and ujt["type"] in ("job_template", "workflow_approval")
        if ujt["type"] == "job_template":
            assert ujt["name"] in templates
        for kind, targets in node.get("related", {}).items():
            assert kind in ("success_nodes", "failure_nodes", "always_nodes")
            assert all(t["identifier"] in nodes for t in targets)

    def next_of(identifier):
        return [t["identifier"] for t in nodes[identifier].get("related", {}).get("success_nodes", [])]

    roots = set(nodes) - {t for n in nodes for t in next_of(n)}
    chain = [roots.pop()]
    while next_of(chain[-1]):
        (following,) = next_of(chain[-1])
        chain.append(following)
    kinds = [nodes[i]["unified_job_template"] for i in chain]
    assert [k["type"] for k in kinds] == ["job_template", "workflow_approval", "job_template"]
    assert [templates[kinds[0]["name"]]["playbook"], templates[kinds[2]["name"]]["playbook"]] == \
        ["playbooks/audit.yml", "playbooks/purge.yml"]
    assert not any(nodes[i].get("related", {}).get(k) for i in chain for k in ("failure_nodes", "always_nodes"))
    asked = {q["variable"] for q in workflow["survey_spec"]["spec"]}
    purge_asks = {q["variable"] for q in templates[kinds[2]["name"]]["survey_spec"]["spec"]}
    assert asked == purge_asks, "the workflow asks what the purge needs"


def test_apply_yml_syntax_resolves_the_awx_modules():
    proc = subprocess.run(["ansible-playbook", "--syntax-check", os.path.join(AWX, "apply.yml")],
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
