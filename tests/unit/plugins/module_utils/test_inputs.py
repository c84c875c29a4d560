"""_inputs: every playbook variable refused with one short line that starts with its name (the controller's pure
checks), and the backup directory's rules on the host (symlinks, owners, world-writable, protected, inside a
residue by spelling or by realpath), tried with real directories, links and owners."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.residue.purge.plugins.module_utils import _inputs

IS_ROOT = os.geteuid() == 0
NOBODY = 65534


@pytest.mark.parametrize("values,require,name,text", [
    ({}, True, "residue_targets", "is not set"),
    ({"residue_targets": []}, True, "residue_targets", "is empty"),
    ({"residue_targets": ["nope"]}, False, "residue_targets", "unknown profile(s) nope; known: "),
    ({"residue_targets": [""]}, False, "residue_targets", "expected a list of names"),
    ({"residue_targets": {"a": 1}}, False, "residue_targets", "expected a list of names"),
    ({"residue_profiles": "x"}, False, "residue_profiles", "expected a mapping"),
    ({"residue_profiles": {"t": {"paths": ["{nowhere}/x"]}}}, False, "residue_profiles", "unknown placeholder"),
    ({"residue_profiles": {"t": {"colour": 1}}}, False, "residue_profiles", "unknown key(s) colour"),
    ({"residue_homes": ["rel/home"]}, False, "residue_homes", "is not an absolute path"),
    ({"residue_homes": ["/a/../etc"]}, False, "residue_homes", "'..'"),
    ({"residue_homes": 5}, False, "residue_homes", "expected a list"),
    ({"residue_backup_dir": "backups"}, False, "residue_backup_dir", "is not an absolute path"),
    ({"residue_backup_dir": "/var/../etc"}, False, "residue_backup_dir", "'..'"),
    ({"residue_backup_dir": "//"}, False, "residue_backup_dir", "'/' is refused"),
    ({"residue_restore_archive": "a.tar.gz"}, False, "residue_restore_archive", "is not an absolute path"),
    ({"residue_report_dir": ["x"]}, False, "residue_report_dir", "expected a directory path"),
    ({"residue_install_deps": "maybe"}, False, "residue_install_deps", "expected true or false"),
    ({"residue_hosts": ""}, False, "residue_hosts", "inventory pattern"),
    ({"residue_prune_older_than": "soon"}, False, "residue_prune_older_than", "expected a duration"),
    ({"residue_prune_older_than": -1}, False, "residue_prune_older_than", "cannot be negative"),
    ({"residue_prune_older_than": True}, False, "residue_prune_older_than", "expected a duration"),
    ({"residue_prune_max_size": "big"}, False, "residue_prune_max_size", "expected a size"),
    ({"residue_prune_max_size": "10X"}, False, "residue_prune_max_size", "expected a size"),
])
def test_a_bad_variable_is_named_in_one_short_line(values, require, name, text):
    with pytest.raises(_inputs.InputError) as err:
        _inputs.check(values, require)
    message = str(err.value)
    assert message.startswith(name), message
    assert text in message, message
    assert "\n" not in message and len(message) < 300, message


def test_good_values_are_normalised():
    out = _inputs.check({"residue_targets": "open_autoglm, mytool", "residue_homes": "//srv//home/a/",
                         "residue_profiles": {"mytool": {"paths": ["{user_cache}/mytool"]}},
                         "residue_backup_dir": "/var/backups//residue/", "residue_install_deps": "yes",
                         "residue_prune_older_than": "1w2d", "residue_prune_max_size": "1.5G",
                         "residue_report_dir": "", "residue_restore_archive": None}, require_targets=True)
    assert out["targets"] == ["open_autoglm", "mytool"]
    assert out["homes"] == ["/srv/home/a"] and out["backup_dir"] == "/var/backups/residue"
    assert out["install_deps"] is True and out["older_than"] == 9 * 86400 and out["max_size"] == int(1.5 * 1024 ** 3)
    assert out["report_dir"] is None and out["restore_archive"] is None


def test_unset_targets_mean_every_profile_when_not_required():
    assert _inputs.check({}, require_targets=False)["targets"] == []
    assert _inputs.check({"residue_targets": None}, require_targets=False)["targets"] == []


def test_same_duration_and_size_rules_as_the_modules():
    from ansible_collections.residue.purge.plugins.module_utils._units import parse_duration, parse_size
    for text in ("30d", "12h", "90", "1w2d", "0"):
        assert _inputs.duration(text, "v") == parse_duration(text)
    for text in ("10G", "512M", "1.5T", "4096", "2GiB"):
        assert _inputs.size(text, "v") == parse_size(text)


def test_unknown_variable_is_refused():
    with pytest.raises(_inputs.InputError, match="not a residue.purge variable: residue_target"):
        _inputs.check({"residue_target": ["open_autoglm"]})


def test_report_dir_must_be_a_writable_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(_inputs.InputError, match="^residue_report_dir: .* is not a directory"):
        _inputs.report_dir(str(tmp_path / "file"))
    assert _inputs.report_dir(str(tmp_path / "new" / "report")) == str(tmp_path / "new" / "report")


# ------------------------------------------------------------------------------------------------ on the host

def test_backup_dir_good_and_to_be_created(tmp_path):
    assert _inputs.backup_dir(str(tmp_path / "bk" / "new"), "residue_backup_dir") == str(tmp_path / "bk" / "new")


def test_backup_dir_relative_is_refused():
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: 'bk' is not an absolute path"):
        _inputs.backup_dir("bk", "residue_backup_dir")


@pytest.mark.skipif(not IS_ROOT, reason="a symlink and a directory of another user need root to make")
def test_backup_dir_through_a_users_symlink_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    os.lchown(str(tmp_path / "link"), NOBODY, NOBODY)
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .*link is a symlink owned by"):
        _inputs.backup_dir(str(tmp_path / "link" / "bk"), "residue_backup_dir")


@pytest.mark.skipif(not IS_ROOT, reason="a directory of another user needs root to make")
def test_backup_dir_owned_by_another_user_is_refused(tmp_path):
    (tmp_path / "theirs").mkdir()
    os.chown(str(tmp_path / "theirs"), NOBODY, NOBODY)
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .*theirs belongs to"):
        _inputs.backup_dir(str(tmp_path / "theirs" / "bk"), "residue_backup_dir")


def test_backup_dir_world_writable_without_sticky_is_refused(tmp_path):
    (tmp_path / "open").mkdir()
    os.chmod(str(tmp_path / "open"), 0o777)
    with pytest.raises(_inputs.InputError, match="writable by every user"):
        _inputs.backup_dir(str(tmp_path / "open" / "bk"), "residue_backup_dir")
    os.chmod(str(tmp_path / "open"), 0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert _inputs.backup_dir(str(tmp_path / "open" / "bk"), "residue_backup_dir")


def test_backup_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(_inputs.InputError, match="is not a directory"):
        _inputs.backup_dir(str(tmp_path / "f" / "bk"), "residue_backup_dir")


def test_backup_dir_protected_is_refused(tmp_path):
    home = str(tmp_path / "home")
    os.mkdir(home)
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .* is a protected directory"):
        _inputs.backup_dir(home + "/", "residue_backup_dir", protected={home})


def test_backup_dir_inside_a_residue_is_refused_by_spelling_and_by_realpath(tmp_path):
    (tmp_path / "real" / "res").mkdir(parents=True)
    os.symlink(str(tmp_path / "real"), str(tmp_path / "alias"))  # root's own link (as /home -> /data/home)
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .* is inside .*res, which is to be removed"):
        _inputs.backup_dir(str(tmp_path / "real" / "res" / "bk"), "residue_backup_dir",
                           residues=[str(tmp_path / "real" / "res")])
    # the residue spelled through the link, the backup dir through its real path: the same place
    with pytest.raises(_inputs.InputError, match="is inside"):
        _inputs.backup_dir(str(tmp_path / "real" / "res" / "bk"), "residue_backup_dir",
                           residues=[str(tmp_path / "alias" / "res")])
    assert _inputs.backup_dir(str(tmp_path / "real" / "resx"), "residue_backup_dir",
                              residues=[str(tmp_path / "alias" / "res")])


def test_check_host_names_residue_homes(tmp_path):
    with pytest.raises(_inputs.InputError, match="^residue_homes: .*nohome: No such file"):
        _inputs.check_host({"residue_homes": [str(tmp_path / "nohome")]})


def test_check_host_refuses_a_backup_dir_inside_a_targets_residue(tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "mytool").mkdir(parents=True)
    values = {"residue_homes": [str(home)], "residue_targets": ["mytool"],
              "residue_profiles": {"mytool": {"paths": ["{user_cache}/mytool"]}},
              "residue_backup_dir": str(home / ".cache" / "mytool" / "bk")}
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .*mytool/bk is inside .*mytool, which is to"):
        _inputs.check_host(values)
    values["residue_backup_dir"] = str(home / ".cache")
    with pytest.raises(_inputs.InputError, match="is a protected directory"):
        _inputs.check_host(values)
    values["residue_backup_dir"] = str(tmp_path / "bk")
    assert _inputs.check_host(values)["backup_dir"] == str(tmp_path / "bk")


def test_run_is_check_host_and_the_probe_of_the_free_space_where_the_backup_goes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    params = {"require_targets": False,
              "variables": {"residue_homes": [str(home)], "residue_backup_dir": str(tmp_path / "not" / "yet")}}
    result = _inputs.run(params, check_mode=True)
    assert result["changed"] is False and "profiles" not in result["values"]
    assert result["values"]["backup_dir"] == str(tmp_path / "not" / "yet")
    # the nearest directory that exists is probed: the one the backup dir will be made in
    assert result["backup_probe"] == str(tmp_path)
    st = os.statvfs(str(tmp_path))
    assert abs(result["backup_free"] - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
    assert result["python"] and isinstance(result["psutil"], bool)
    assert not (tmp_path / "not").exists()  # nothing is made
    params["variables"]["residue_homes"] = [str(tmp_path / "nohome")]
    with pytest.raises(_inputs.InputError, match="^residue_homes: "):
        _inputs.run(params)


def test_windows_paths_pass_the_controller_for_windows_hosts_but_not_a_posix_host(tmp_path):
    out = _inputs.check({"residue_backup_dir": "C:\\Backups\\residue", "residue_homes": ["C:\\Users\\alice"]})
    assert out["backup_dir"] == "C:\\Backups\\residue" and out["homes"] == ["C:\\Users\\alice"]
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .* must not contain '..'"):
        _inputs.check({"residue_backup_dir": "C:\\Backups\\..\\Windows"})
    with pytest.raises(_inputs.InputError, match="^residue_backup_dir: .* is not an absolute path"):
        _inputs.backup_dir("C:\\Backups\\residue", "residue_backup_dir")


@pytest.mark.parametrize("value,expected", [(None, "host"), ("", "host"), ("host", "host"), ("cache", "cache")])
def test_budget_scope_defaults_to_one_budget_per_host(value, expected):
    assert _inputs.check({"residue_prune_budget_scope": value})["budget_scope"] == expected


@pytest.mark.parametrize("value", ["hosts", "Cache", 3, ["host"]])
def test_a_bad_budget_scope_is_named(value):
    with pytest.raises(_inputs.InputError) as exc:
        _inputs.check({"residue_prune_budget_scope": value})
    assert str(exc.value).startswith("residue_prune_budget_scope: expected host") and "\n" not in str(exc.value)
