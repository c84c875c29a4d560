"""Execution environments: `ansible-builder create` builds both contexts (meta/ and awx/ definitions), the built
collection installs from the awx context the way the image's galaxy stage installs it, and `ansible-builder
introspect` finds the collection's controller-side dependencies there. No container engine needed.
"""
import json
import os
import subprocess
import tarfile

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO, ansible_env

EE = os.path.join(REPO, ".build", "ee")


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def lines(text):
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def contexts():
    proc = subprocess.run([os.path.join(REPO, "tools", "ee.sh")], env=ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_collection_level_metadata_follows_the_convention():
    meta = yaml.safe_load(read(REPO, "meta", "execution-environment.yml"))
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    reqs = [Requirement(line) for line in lines(read(REPO, "meta", "ee-requirements.txt"))]
    assert "psutil" in {r.name for r in reqs}
    for req in reqs:  # collection-level: no ansible-core pin, no upper caps (the image decides versions)
        assert req.name not in ("ansible", "ansible-core", "ansible-base"), req
        assert not [s for s in req.specifier if s.operator in ("<", "<=", "==", "===", "~=")], req


def test_collection_context(contexts):
    ctx = os.path.join(EE, "collection")
    assert lines(read(ctx, "_build", "requirements.txt")) == lines(read(REPO, "meta", "ee-requirements.txt"))
    assert lines(read(ctx, "_build", "bindep.txt")) == lines(read(REPO, "meta", "ee-bindep.txt"))
    containerfile = read(ctx, "Containerfile")
    assert "/output/scripts/assemble" in containerfile and "install-from-bindep" in containerfile


def test_awx_context_holds_the_collection_and_pins_what_is_tested(contexts):
    ctx = os.path.join(EE, "awx")
    containerfile = read(ctx, "Containerfile")
    with open(os.path.join(REPO, "requirements-dev.txt")) as f:
        pins = [line.strip() for line in f if line.startswith(("ansible-core==", "ansible-runner=="))]
    assert len(pins) == 2
    for pin in pins:
        assert pin in containerfile, pin
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert yaml.safe_load(read(ctx, "_build", "requirements.yml")) == \
        yaml.safe_load(read(REPO, "awx", "ee-galaxy-requirements.yml"))
    with tarfile.open(os.path.join(ctx, "_build", "collections", "residue-purge.tar.gz")) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("residue", "purge")
    assert "meta/execution-environment.yml" in names and "meta/ee-requirements.txt" in names
    assert "plugins/filter/stats.py" in names and "playbooks/purge.yml" in names
    assert not [n for n in names if n.startswith((".venv", ".build", "report/", "tests/output"))]


def test_introspect_sees_the_dependencies_of_the_installed_collection(contexts, tmp_path):
    # as the image's galaxy stage does: ansible-galaxy in /build (= the context's _build) with its requirements.yml,
    # where no residue.purge is installed yet
    build = os.path.join(EE, "awx", "_build")
    install = subprocess.run(["ansible-galaxy", "collection", "install", "-r", "requirements.yml",
                              "-p", str(tmp_path)], cwd=build, env=ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}),
                             capture_output=True, text=True,
                             timeout=120, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    assert (tmp_path / "ansible_collections" / "residue" / "purge" / "plugins" / "filter" / "stats.py").is_file()
    found = subprocess.run(["ansible-builder", "introspect", "--sanitize", str(tmp_path)], env=ansible_env(),
                           capture_output=True, text=True, timeout=120, check=True).stdout
    deps = yaml.safe_load(found)
    assert "psutil  # from collection residue.purge" in deps["python"]
    system = [line.split("#")[0].strip() for line in deps["system"] if "from collection residue.purge" in line]
    assert system == lines(read(REPO, "meta", "ee-bindep.txt"))
