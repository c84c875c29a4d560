# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""residue_host_results: a host's registered results, failure, completed and reachable, as the report role read
them with one Jinja expression per variable before."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.residue.purge.plugins.filter.report import REGISTERED, SLOTS, host_record, host_results

RUN = {"run_id": "r1", "started": "2026-12-03 10:00:00", "check_mode": False, "targets": ["t"], "playbook": "purge"}


def test_every_slot_of_the_record_has_its_registered_variable():
    assert set(REGISTERED) == set(SLOTS)


def test_a_completed_host_gives_its_results_and_is_reachable():
    found = {"residues": [], "processes": [], "packages": [], "hf_caches": [], "total_bytes": 0}
    hostvars = {"preflight_found": found, "sweep_pip": {"skipped": True}, "residue_completed": True,
                "unrelated": "x"}
    out = host_results(hostvars, RUN)
    assert out["results"]["found"] == found and out["results"]["pip"] == {"skipped": True}
    assert out["results"]["failure"] is None and out["results"]["removed"] is None
    assert out["run"] == dict(RUN, completed=True, reachable=True)
    assert host_record(out["results"], "h1", out["run"])["status"] == "ok"


@pytest.mark.parametrize("hostvars, reachable, status", [
    # the first phase that recorded a failure wins; an earlier empty one does not count
    ({"preflight_failure": None, "stop_failure": {"phase": "stop", "task": "x", "msg": "kept running"},
      "verify_failure": {"phase": "verify", "task": "y", "msg": "later"}}, True, "failed"),
    ({"preflight_failure": {"phase": "connect", "task": "connection", "msg": "host unreachable: x",
                            "unreachable": True}}, False, "unreachable"),
    ({}, False, "unreachable"),  # nothing recorded at all: the host never answered
])
def test_failures_and_reachability(hostvars, reachable, status):
    out = host_results(hostvars, RUN)
    assert out["run"]["completed"] is False and out["run"]["reachable"] is reachable
    if hostvars.get("stop_failure"):
        assert out["results"]["failure"]["phase"] == "stop"
    assert host_record(out["results"], "h1", out["run"])["status"] == status


def test_not_a_host_s_variables_is_refused():
    with pytest.raises(AnsibleFilterError):
        host_results(["preflight_found"], RUN)
