"""tools/role_docs.py: the shared residue_* variables are one text in every role (make docs fails otherwise)."""
import os
import shutil
import subprocess
import sys

import yaml

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import role_docs  # noqa: E402  (a tool, not a package)


def role_dirs(top):
    return sorted(os.path.join(top, "roles", r) for r in os.listdir(os.path.join(top, "roles"))
                  if os.path.isfile(os.path.join(top, "roles", r, "meta", "argument_specs.yml")))


def test_the_roles_agree_on_every_shared_variable():
    dirs = role_dirs(REPO)
    assert len(dirs) >= 5
    assert role_docs.shared_variable_drift(dirs) == []


def test_a_role_that_words_a_shared_variable_differently_is_named(tmp_path):
    shutil.copytree(os.path.join(REPO, "roles"), str(tmp_path / "roles"))
    spec_file = tmp_path / "roles" / "sweep" / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_file.read_text())
    specs["argument_specs"]["main"]["options"]["residue_backup_dir"]["description"] = ["Somewhere else."]
    spec_file.write_text(yaml.safe_dump(specs))
    drift = role_docs.shared_variable_drift(role_dirs(str(tmp_path)))
    assert len(drift) == 1 and drift[0].startswith("residue_backup_dir differs between roles:")
    assert "sweep (main)" in drift[0] and "stop (main)" in drift[0]


def test_check_fails_on_drift(tmp_path):
    top = tmp_path / "top"
    shutil.copytree(os.path.join(REPO, "roles"), str(top / "roles"))
    shutil.copytree(os.path.join(REPO, "tools"), str(top / "tools"))
    spec_file = top / "roles" / "verify" / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_file.read_text())
    specs["argument_specs"]["main"]["options"]["residue_homes"]["type"] = "str"
    spec_file.write_text(yaml.safe_dump(specs))
    run = subprocess.run([sys.executable, str(top / "tools" / "role_docs.py"), "--check"], capture_output=True,
                         text=True, check=False)
    assert run.returncode == 1
    assert "residue_homes differs between roles" in run.stderr
