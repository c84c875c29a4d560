# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every filter of the collection is documented: `ansible-doc -t filter residue.purge.<name>` renders it, and its
documented options are the filter function's own parameters."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import importlib
import inspect
import json
import os
import subprocess

from conftest import REPO, ansible_env


def collection_filters():
    """{name: function} of every FilterModule in plugins/filter/*.py."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, "plugins", "filter", "*.py"))):
        module = importlib.import_module("ansible_collections.residue.purge.plugins.filter."
                                         + os.path.basename(path)[:-3])
        out.update(module.FilterModule().filters())
    return out


def ansible_doc(*args):
    proc = subprocess.run(["ansible-doc", "-t", "filter"] + list(args), env=ansible_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


def test_every_filter_is_listed_with_a_description():
    filters = collection_filters()
    assert len(filters) >= 9, sorted(filters)
    listing = ansible_doc("-l", "residue.purge")
    for name in filters:
        line = [row for row in listing.splitlines() if row.split() and row.split()[0] == "residue.purge." + name]
        assert line and "UNDOCUMENTED" not in line[0], (name, listing)


def test_ansible_doc_renders_each_filter_and_documents_its_parameters():
    filters = collection_filters()
    docs = json.loads(ansible_doc("--json", *["residue.purge." + name for name in sorted(filters)]))
    for name, function in filters.items():
        doc = docs["residue.purge." + name]["doc"]
        assert doc["name"] == name and doc["short_description"] and doc["description"], name
        assert docs["residue.purge." + name]["examples"].count("residue.purge." + name) >= 1, name
        assert docs["residue.purge." + name]["return"]["_value"]["description"], name
        parameters = list(inspect.signature(function).parameters)[1:]
        assert sorted(doc["options"]) == sorted(["_input"] + parameters), (name, sorted(doc["options"]), parameters)
        if parameters:
            assert doc["positional"] == ", ".join(["_input"] + parameters), (name, doc.get("positional"))
    for name in filters:  # and each renders as text, as a user would read it
        assert "residue.purge." + name in ansible_doc("residue.purge." + name)
