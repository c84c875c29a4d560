"""README's "Install" section, driven as written: the command lines are read from the README itself (so the test
fails when they drift), run in a throwaway HOME without the checkout's collection path, and the first command a
user runs (the audit, no targets: every profile) then runs from the installed collection against localhost with a
sandbox home. Only the git+https line is not run (no network here); it must have the git+file line's form."""
import json
import os
import re
import subprocess

import pytest

from conftest import REPO, VENV_PYTHON, ansible_env
from test_artifacts import copy_sources

DIST = "/tmp/residue-dist"  # as the README writes them: replaced by the test's own directories
CLONE = "/path/to/residue-purge"


def install_section():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    match = re.search(r"^## Install\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, "README.md has no '## Install' section"
    return [line[4:] for line in match.group(1).splitlines() if line.startswith("    ") and line.strip()]


def lines(prefix):
    found = [line.split("  #")[0].strip() for line in install_section() if line.startswith(prefix)]
    assert found, "no line starting with %r in README's Install section" % prefix
    return found


def fresh_env(home):
    """What a new user has: a HOME of their own, nothing pointing at the checkout."""
    env = ansible_env({"HOME": str(home)})
    for name in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_HOME", "PYTHONPATH",
                 "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"):
        env.pop(name, None)
    return env


def sh(line, env, cwd, timeout=300):
    proc = subprocess.run(["bash", "-c", line], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, (line, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def installed_at(env, cwd):
    """The collection paths (without their ansible_collections/) where Ansible finds residue.purge."""
    out = sh("ansible-galaxy collection list residue.purge --format json", env, cwd).stdout
    return sorted(os.path.dirname(path.rstrip("/")) for path, found in json.loads(out).items() if "residue.purge" in found)


def test_release_tarball_install_then_the_first_audit(tmp_path):
    home, dist, src = tmp_path / "home", tmp_path / "dist", tmp_path / "src"
    home.mkdir()
    copy_sources(str(src))
    env = fresh_env(home)
    (build,) = lines("ansible-galaxy collection build")
    (install,) = [line for line in lines("ansible-galaxy collection install") if DIST in line]
    sh(build.replace(DIST, str(dist)), env, src)
    sh(install.replace(DIST, str(dist)), env, tmp_path)
    assert installed_at(env, tmp_path) == [str(home / ".ansible" / "collections")]
    with open(os.path.join(REPO, "galaxy.yml")) as f:
        version = re.search(r"^version: (\S+)", f.read(), re.M).group(1)
    manifest = home / ".ansible" / "collections" / "ansible_collections" / "residue" / "purge" / "MANIFEST.json"
    assert json.loads(manifest.read_text())["collection_info"]["version"] == version

    # the first command: an audit of this machine, every profile, as README writes it (plus a sandbox)
    (audit,) = [line for line in lines("ansible-playbook residue.purge.audit") if "localhost" in line]
    sandbox = tmp_path / "sandbox" / "alice"
    (sandbox / ".cache" / "open-autoglm").mkdir(parents=True)
    (sandbox / ".cache" / "open-autoglm" / "state.db").write_bytes(b"s" * 4096)
    extra = {"residue_homes": [str(sandbox)], "ansible_python_interpreter": VENV_PYTHON}
    proc = sh("%s -e '%s'" % (audit, json.dumps(extra)), env, tmp_path, timeout=600)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", proc.stdout), proc.stdout[-2000:]
    fleet = json.loads((tmp_path / "report" / "latest" / "fleet.json").read_text())
    (host,) = fleet["hosts"]
    assert host["status"] == "preview" and host["check_mode"] is True
    assert str(sandbox / ".cache" / "open-autoglm") in [r["path"] for r in host["found"]["residues"]]
    assert (sandbox / ".cache" / "open-autoglm" / "state.db").stat().st_size == 4096  # an audit changes nothing


def test_git_install_as_the_readme_writes_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_env(home)
    gits = lines("ansible-galaxy collection install git+")
    local = [line for line in gits if line.startswith("ansible-galaxy collection install git+file://")]
    remote = [line for line in gits if line.startswith("ansible-galaxy collection install git+https://")]
    assert len(local) == 1 and len(remote) == 1, gits
    assert CLONE in local[0]
    if not os.path.isdir(os.path.join(REPO, ".git")) and not os.path.isfile(os.path.join(REPO, ".git")):
        pytest.fail("the checkout is not a git repository: the git+file line cannot be tried")
    sh(local[0].replace(CLONE, REPO), env, tmp_path)
    assert installed_at(env, tmp_path) == [str(home / ".ansible" / "collections")]
    installed = home / ".ansible" / "collections" / "ansible_collections" / "residue" / "purge"
    assert (installed / "playbooks" / "audit.yml").is_file() and (installed / "roles" / "preflight").is_dir()


def test_checkout_exports_point_ansible_at_the_checkout(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    exports = lines("export ")
    assert any("ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections" in line for line in exports), exports
    env = fresh_env(home)
    assert installed_at(env, tmp_path) == []  # a new user's Ansible does not know the collection
    env["BASH_ENV"] = str(tmp_path / "exports.sh")  # the README's exports, run in the checkout, for the next shell
    (tmp_path / "exports.sh").write_text("cd %s\n%s\n" % (REPO, "\n".join(exports)))
    assert installed_at(env, REPO) == [os.path.join(REPO, ".build", "collections")]
    assert not (home / ".ansible" / "collections").exists()
