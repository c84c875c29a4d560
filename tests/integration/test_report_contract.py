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

import os

import pytest

import report_scenarios
from ansible_collections.residue.purge.plugins.filter.report import ANSIBLE_KEYS
from ansible_collections.residue.purge.tests.unit.plugins.filter import report_contract as contract

REGENERATE = "PYTHONPATH=.build/collections .venv/bin/python tests/integration/report_scenarios.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scenarios need root (a user, immutable files)")


def shape(result):
    return report_scenarios.key_paths(dict((k, v) for k, v in result.items() if k not in ANSIBLE_KEYS))


@pytest.mark.parametrize("scenario", report_scenarios.SCENARIOS)
def test_stored_results_have_the_shape_the_modules_return_today(scenario):
    stored = contract.load(scenario)
    today = report_scenarios.capture(scenario)
    assert [(s["slot"], s["module"]) for s in today["steps"]] == [(s["slot"], s["module"]) for s in stored["steps"]]
    for now, then in zip(today["steps"], stored["steps"]):
        assert now["result"].get("failed") == then["result"].get("failed"), (scenario, now["slot"], now["result"])
        new, gone = sorted(shape(now["result"]) - shape(then["result"])), sorted(shape(then["result"]) - shape(now["result"]))
        assert not new and not gone, ("%s: %s's result changed shape (new %s, gone %s); regenerate the fixtures with "
                                      "`%s` and check the unit contract test" % (scenario, now["module"], new, gone,
                                                                                 REGENERATE))
