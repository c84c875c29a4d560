# -*- coding: utf-8 -*-
# Copyright: residue.purge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_report_files: every record and page of a run in one call, atomically, inside dest only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _report_files


def params(tmp_path, **kw):
    out = dict(dest=str(tmp_path / "report" / "run-1"), latest=str(tmp_path / "report" / "latest"),
               records=[{"host": "web-1", "status": "ok", "freed_bytes": 5}, {"host": "db", "status": "failed"}],
               files=[{"name": "fleet.md", "content": u"# R\u00e9port\n"}, {"name": "fleet.json", "data": {"b": 1, "a": [2]}}],
               mode="0640", dir_mode="0750")
    out.update(kw)
    return out


def test_writes_every_record_page_and_link_with_their_modes(tmp_path):
    old = os.umask(0o077)
    try:
        result = _report_files.run(params(tmp_path))
    finally:
        os.umask(old)
    run = tmp_path / "report" / "run-1"
    assert result["changed"] and len(result["written"]) == 4
    assert json.loads((run / "hosts" / "web-1.json").read_text()) == {"host": "web-1", "status": "ok", "freed_bytes": 5}
    # as to_nice_json(indent=2) writes it, with the final newline of the template it replaces
    assert (run / "fleet.json").read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    assert (run / "fleet.md").read_text(encoding="utf-8") == u"# R\u00e9port\n"
    assert os.readlink(str(tmp_path / "report" / "latest")) == "run-1"
    for path in (run / "hosts" / "db.json", run / "fleet.md"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for path in (tmp_path / "report", run, run / "hosts"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o750  # not the umask's 0700
    assert not [n for n in os.listdir(str(run)) if n.startswith(".")]  # no temporary file left


def test_second_run_changes_nothing_and_check_mode_writes_nothing(tmp_path):
    _report_files.run(params(tmp_path))
    again = _report_files.run(params(tmp_path))
    assert not again["changed"] and again["written"] == []
    other = params(tmp_path, dest=str(tmp_path / "report" / "run-2"))
    planned = _report_files.run(other, check_mode=True)
    assert planned["changed"] and len(planned["written"]) == 4
    assert not (tmp_path / "report" / "run-2").exists()
    assert os.readlink(str(tmp_path / "report" / "latest")) == "run-1"
    _report_files.run(other)
    assert os.readlink(str(tmp_path / "report" / "latest")) == "run-2"


@pytest.mark.parametrize("name", ["../escape.md", "/etc/passwd", "a/../../b", "", ".", "x\0y"])
def test_a_name_outside_dest_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(ValueError):
        _report_files.run(params(tmp_path, files=[{"name": "ok.md", "content": "x"}, {"name": name, "content": "x"}]))
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("host, written", [("a/../../etc", "a%2F..%2F..%2Fetc.json"), ("..", "%2E%2E.json"),
                                           ("50%/x", "50%25%2Fx.json")])
def test_a_host_name_never_leaves_hosts(tmp_path, host, written):
    _report_files.run(params(tmp_path, records=[{"host": host}], files=[]))
    hosts = tmp_path / "report" / "run-1" / "hosts"
    assert os.listdir(str(hosts)) == [written]
    assert sorted(os.listdir(str(tmp_path / "report"))) == ["latest", "run-1"]


def test_a_symlink_in_place_of_a_record_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    hosts = tmp_path / "report" / "run-1" / "hosts"
    hosts.mkdir(parents=True)
    (hosts / "web-1.json").symlink_to(outside)
    _report_files.run(params(tmp_path))
    assert outside.read_text() == "keep"
    assert not (hosts / "web-1.json").is_symlink()
    assert json.loads((hosts / "web-1.json").read_text())["host"] == "web-1"


def test_a_symlinked_hosts_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "report" / "run-1"
    run.mkdir(parents=True)
    (run / "hosts").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="symlink"):
        _report_files.run(params(tmp_path))
    assert os.listdir(str(elsewhere)) == []


def test_latest_that_is_a_directory_is_refused_and_duplicates_too(tmp_path):
    (tmp_path / "report" / "latest").mkdir(parents=True)
    with pytest.raises(ValueError, match="directory"):
        _report_files.run(params(tmp_path))
    with pytest.raises(ValueError, match="named twice"):
        _report_files.run(params(tmp_path, latest=None, files=[{"name": "hosts/web-1.json", "content": "x"}]))
    with pytest.raises(ValueError, match="content or data"):
        _report_files.run(params(tmp_path, latest=None, files=[{"name": "a.md"}]))
