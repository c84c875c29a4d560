# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's contract fixtures stay what the modules return: each scenario of report_scenarios.py is run again
(real modules, real ansible-playbook) and the shape of every result (its key paths) must equal the stored one.
When a module gains, loses or renames a key, this fails until the fixtures are regenerated, and then the unit
contract test says whether the report carries the new key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import json
import os

import pytest

import report_scenarios
# REGISTERED: the names the roles register each module's result under (roles/*/tasks), by the report's slot
from ansible_collections.residue.purge.plugins.filter.report import ANSIBLE_KEYS, REGISTERED
from ansible_collections.residue.purge.tests.unit.plugins.filter import report_contract as contract

REGENERATE = "PYTHONPATH=.build/collections .venv/bin/python tests/integration/report_scenarios.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scenarios need root (a user, immutable files)")


def shape(result):
    return report_scenarios.key_paths(dict((k, v) for k, v in result.items() if k not in ANSIBLE_KEYS))


@pytest.fixture(scope="module")
def captured():
    """Every scenario captured today, the worlds built and their modules run at the same time."""
    return report_scenarios.capture_all()


@pytest.mark.parametrize("scenario", report_scenarios.SCENARIOS)
def test_stored_results_have_the_shape_the_modules_return_today(captured, scenario):
    stored = contract.load(scenario)
    today = captured[scenario]
    assert [(s["slot"], s["module"]) for s in today["steps"]] == [(s["slot"], s["module"]) for s in stored["steps"]]
    for now, then in zip(today["steps"], stored["steps"]):
        assert now["result"].get("failed") == then["result"].get("failed"), (scenario, now["slot"], now["result"])
        new, gone = sorted(shape(now["result"]) - shape(then["result"])), sorted(shape(then["result"]) - shape(now["result"]))
        assert not new and not gone, ("%s: %s's result changed shape (new %s, gone %s); regenerate the fixtures with "
                                      "`%s` and check the unit contract test" % (scenario, now["module"], new, gone,
                                                                                 REGENERATE))


# ---------------------------------------------------------------- the stored results through the real report role

PLAY = """
- name: The hosts of the run, with the results their roles registered
  hosts: run
  gather_facts: false
  vars:
    residue_playbook: {playbook}
    residue_targets: {targets}
  pre_tasks:
    - name: Record the run
      ansible.builtin.import_tasks: {record_run}
  tasks:
    - name: Register the stored results under the roles' names (from JSON, as module results arrive)
      ansible.builtin.set_fact:
        "{{{{ item.key }}}}": "{{{{ item.value }}}}"
      loop: "{{{{ lookup('ansible.builtin.file', contract_results) | from_json | dict2items }}}}"
      loop_control:
        label: "{{{{ item.key }}}}"
    - name: Mark the host done
      ansible.builtin.set_fact:
        residue_completed: "{{{{ contract_completed | bool }}}}"

- name: Report
  hosts: localhost
  gather_facts: false
  roles:
    - role: residue.purge.report
      vars:
        residue_run: "{{{{ hostvars['localhost']['residue_run'] }}}}"
"""


def render(tmp_path, playbook, hosts, check=False):
    """hosts: {name: (scenario document, slots to register, completed)}; run the report role; the run's dir."""
    import json
    import subprocess
    import yaml
    from conftest import REPO, VENV_PYTHON, ansible_env
    tmp_path.mkdir(parents=True, exist_ok=True)
    lines = ["localhost ansible_connection=local ansible_python_interpreter=%s" % VENV_PYTHON, "[run]"]
    targets = set()
    for host, (doc, wanted, completed) in hosts.items():
        registered = dict((REGISTERED[s["slot"]], s["result"]) for s in doc["steps"] if s["slot"] in wanted
                          and s["slot"] in REGISTERED)
        for step in doc["steps"]:  # a failed check_vars: what the preflight rescue records
            if step["slot"] in contract.RESCUED and step["slot"] in wanted and step["result"].get("failed"):
                registered[contract.RESCUED[step["slot"]] + "_failure"] = contract.rescued(step)
        if not completed:  # what the stop phase's rescue records when a module failed
            registered["stop_failure"] = {"phase": "stop", "task": "Fail the host when something keeps running or "
                                          "coming back", "msg": "; ".join(
                                              s["result"]["msg"] for s in doc["steps"]
                                              if s["slot"] in ("autostart", "reaped") and s["result"].get("failed"))}
        path = tmp_path / (host + ".json")
        path.write_text(json.dumps(registered))
        lines.append("%s ansible_connection=local ansible_python_interpreter=%s contract_results=%s "
                     "contract_completed=%s" % (host, VENV_PYTHON, path, completed))
        targets.add(doc["target"])
    inventory = tmp_path / ("inventory-%s.ini" % playbook)
    inventory.write_text("\n".join(lines) + "\n")
    play = tmp_path / ("play-%s.yml" % playbook)
    play.write_text(PLAY.format(playbook=playbook, targets=json.dumps(sorted(targets)),
                                record_run=os.path.join(REPO, "playbooks", "tasks", "record_run.yml")))
    report = tmp_path / "report"
    cmd = ["ansible-playbook", "-i", str(inventory), str(play), "-e", "residue_report_dir=%s" % report]
    proc = subprocess.run(cmd + (["--check"] if check else []), env=ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    latest = report / "latest"
    assert latest.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return os.path.realpath(str(latest)), proc


def page_texts(run_dir):
    """What a reader sees: fleet.md rendered as GFM would render it, and fleet.html, both as plain text."""
    from html.parser import HTMLParser
    from markdown_it import MarkdownIt

    class Text(HTMLParser):
        def __init__(self):
            HTMLParser.__init__(self, convert_charrefs=True)
            self.parts, self.tags = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.parts.append("\n")

        def handle_data(self, data):
            self.parts.append(data)

    texts = {}
    with open(os.path.join(run_dir, "fleet.md")) as f:
        md = f.read()
    with open(os.path.join(run_dir, "fleet.html")) as f:
        html = f.read()
    for name, source in (("fleet.md", MarkdownIt("commonmark").enable("table").render(md)), ("fleet.html", html)):
        parser = Text()
        parser.feed(source)
        texts[name] = ("".join(parser.parts), parser.tags)
    return texts


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The stored results through the report role, one run per mode: {mode: (run dir, ansible output, hosts)}."""
    clean, partial, preview, windows = (contract.load(s) for s in ("clean", "partial", "preview", "windows"))
    sweep = ("found", "hf", "budget", "removed")  # prune.yml runs preflight and sweep only
    runs = {
        "purge": ("purge", {"h-clean": (clean, [s for s in REGISTERED if s != "restored"], True),
                            "h-partial": (partial, list(REGISTERED) + list(contract.RESCUED), False)}, False),
        "preview": ("purge", {"h-preview": (preview, list(REGISTERED), True)}, True),
        "audit": ("audit", {"h-preview": (preview, list(REGISTERED), True)}, True),
        "prune": ("prune", {"h-clean": (clean, sweep, True)}, False),
        "restore": ("restore", {"h-clean": (clean, ["restored"], True)}, False),
        # a Windows host's results (constructed: no Windows here) through the same role and pages
        "windows": ("purge", {"h-windows": (windows, [s for s in REGISTERED if s != "restored"], False)}, False),
    }
    # each run has its own directory, inventory and report dir: they run at the same time
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = dict((mode, pool.submit(render, tmp_path_factory.mktemp(mode), playbook, hosts, check))
                       for mode, (playbook, hosts, check) in runs.items())
        out = {}
        for mode, future in futures.items():
            run_dir, proc = future.result()
            out[mode] = (run_dir, proc.stdout + proc.stderr, runs[mode][1])
    return out


def read(run_dir, name):
    with open(os.path.join(run_dir, name)) as f:
        return f.read()


@pytest.mark.parametrize("mode", ["purge", "preview", "windows"])
def test_every_item_of_the_real_results_reaches_the_pages(rendered, mode):
    import json
    from ansible_collections.residue.purge.plugins.filter.report import text
    run_dir, output, hosts = rendered[mode]
    assert "Traceback" not in output
    texts = page_texts(run_dir)
    summary = read(run_dir, "summary.txt")
    checked = 0
    for host, (doc, wanted, _completed) in hosts.items():
        record = json.loads(read(run_dir, os.path.join("hosts", host + ".json")))
        doc = dict(doc, steps=[s for s in doc["steps"] if s["slot"] in wanted])
        for part, wanted_texts, what in contract.expectations(doc):
            entries = [contract.entry_text(e) for e in record[part]]
            assert any(all(t in e for t in wanted_texts) for e in entries), (host, what, wanted_texts)
            for page, (shown, _tags) in texts.items():
                for t in wanted_texts:
                    assert text(t) in shown, (page, host, what, t)
            if part in ("failed", "held_back", "removed", "problems"):
                for t in wanted_texts:
                    assert text(t) in summary, ("summary.txt", host, what, t)
            checked += 1
    assert checked >= (30 if mode == "purge" else 5), checked


# mode -> (in every page and the summary, in fleet.md and fleet.html, in no page and not in the summary)
WORDING = {
    "purge": (["Residue purge report", "freed {freed}", "3 process(es) stopped", "23 item(s) removed"],
              ["What was removed, host by host", "Processes stopped", "Freed"],
              ["Would free", "would free", "to stop", "What a purge would remove"]),
    "preview": (["Residue purge preview", "Check mode: nothing was changed", "would free", "1 process(es) to stop",
                 "item(s) to remove"],
                ["What a purge would remove, host by host", "Processes to stop", "Would free"],
                ["What was removed", "Freed", "Processes stopped", "process(es) stopped", "item(s) removed"]),
    "audit": (["Residue audit", "An audit changes nothing", "would free", "1 process(es) to stop"],
              ["What a purge would remove, host by host"],
              ["What was removed", "Freed", "Processes stopped", "process(es) stopped"]),
    "prune": (["Cache prune report", "freed {freed}", "item(s) pruned"],
              ["What was pruned, host by host", "Freed"],
              ["What was removed", "Processes stopped", "process(es) stopped", "to stop", "Would free"]),
    "restore": (["Restore report", "restored 6 file(s) from 1 archive(s)"],
                ["What was restored, host by host"],
                ["found 0 B", "freed 0 B", "Found", "Freed", "<svg", "What was removed", "Nothing removed",
                 "process(es)"]),
}


@pytest.mark.parametrize("mode", sorted(WORDING))
def test_each_mode_has_its_own_headings_and_summary(rendered, mode):
    run_dir, _output, _hosts = rendered[mode]
    pages = dict((name, read(run_dir, name)) for name in ("fleet.md", "fleet.html"))
    summary = read(run_dir, "summary.txt")
    everywhere, in_pages, nowhere = WORDING[mode]
    # the freed total is the host records' own (captured real results: block counts differ between filesystems)
    from ansible_collections.residue.purge.plugins.filter.report import human_bytes
    records = [json.loads(read(run_dir, os.path.join("hosts", name))) for name in os.listdir(os.path.join(run_dir, "hosts"))]
    freed = sum(r.get("freed_bytes", 0) for r in records)
    assert freed > 0 or mode not in ("purge", "prune"), (mode, records)
    everywhere = [w.format(freed=human_bytes(freed)) if "{freed}" in w else w for w in everywhere]
    for words in everywhere:
        for name, page in list(pages.items()) + [("summary.txt", summary)]:
            assert words in page, (mode, name, words)
    for words in in_pages:
        for name, page in pages.items():
            assert words in page, (mode, name, words)
    for words in nowhere:
        for name, page in list(pages.items()) + [("summary.txt", summary)]:
            assert words not in page, (mode, name, words)


def test_empty_charts_are_not_drawn(rendered):
    assert read(rendered["purge"][0], "fleet.html").count("<svg") == 2  # per host and per target
    for mode in ("preview", "audit"):  # a plan frees bytes too: its charts say "Would free"
        assert read(rendered[mode][0], "fleet.html").count("<svg") == 2
    assert "<svg" not in read(rendered["restore"][0], "fleet.html")
    assert "per target" not in read(rendered["restore"][0], "fleet.md")


def test_a_windows_host_shows_its_autostart_entries(rendered):
    """services, scheduled tasks, Run values and Startup shortcuts are listed as a Linux host's units are."""
    from ansible_collections.residue.purge.plugins.filter.report import text
    run_dir, output, _hosts = rendered["windows"]
    assert "Traceback" not in output
    shown = dict((name, shown) for name, (shown, _tags) in page_texts(run_dir).items())
    for kind, item in (("windows_service", "OllamaSvc (Ollama model server)"),
                       ("scheduled_task", "\\Ollama\\OllamaUpdate"),
                       ("run_key", "CurrentVersion\\Run\\Ollama = "),
                       ("startup_item", "Startup\\Ollama.lnk")):
        for page, body in shown.items():
            assert kind in body and text(item) in body, (page, kind, item)
