"""What the project leaves behind: the collection tarball holds sources only, and the lint stage of make test
writes nothing into the user's home (ansible-lint used to install the collection into ~/.ansible/collections,
where it then shadowed the checkout for every later ansible-playbook run)."""
import os
import shutil
import subprocess
import tarfile

from conftest import REPO, ansible_env


def source_files():
    """The checkout's sources as make's atest-tree copies them: tracked, plus untracked files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                         check=True).stdout
    return sorted(p for p in out.decode().split("\0") if p and os.path.isfile(os.path.join(REPO, p)))


def copy_sources(dest):
    for rel in source_files():
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), target, follow_symlinks=False)


def gitignore_plants():
    """One file for every .gitignore entry (outputs of tests, tools and runs), at the top and one level down
    for entries that match at any depth."""
    plants = []
    with open(os.path.join(REPO, ".gitignore")) as f:
        for line in f:
            entry = line.strip()
            if not entry or entry.startswith("#") or entry.startswith("!"):
                continue
            anchored = entry.startswith("/") or "/" in entry.strip("/")
            name = entry.strip("/").replace("*", "planted")
            is_dir = entry.endswith("/")
            places = [name] if anchored else [name, os.path.join("plugins", name)]
            for place in places:
                plants.append(os.path.join(place, "planted.json") if is_dir else place)
    return plants


def test_tarball_holds_the_sources_and_nothing_else(tmp_path):
    src = tmp_path / "src"
    copy_sources(str(src))
    planted = gitignore_plants() + ["report/20260101T000000Z-purge-1/hosts/gpu-01.json",
                                    ".hypothesis/examples/abc/def", ".pytest_cache/v/cache/nodeids"]
    assert any(p.startswith("report/") for p in gitignore_plants()), "report/ must stay git-ignored"
    for rel in planted:
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"host": "a real host of someone"}')
    out = tmp_path / "out"
    proc = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(src)],
                          env=ansible_env({"HOME": str(tmp_path / "home")}), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("residue-purge-*.tar.gz")
    with tarfile.open(tarball) as tar:
        files = sorted(m.name for m in tar.getmembers() if not m.isdir())
    leaked = sorted(set(files) & set(planted))
    assert not leaked, "dev-only outputs in the tarball: %s" % leaked
    expected = sorted(set(source_files()) - {"galaxy.yml"} | {"MANIFEST.json", "FILES.json"})
    assert files == expected, {"extra": sorted(set(files) - set(expected)),
                               "missing": sorted(set(expected) - set(files))}


def test_lint_stage_writes_nothing_into_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    for name in ("ANSIBLE_HOME", "ANSIBLE_CONFIG", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)  # what make test sets, the Makefile must set itself
    # one playbook is enough: ansible-lint prepares its environment (and used to install the collection) first
    proc = subprocess.run(["make", "--no-print-directory", "-C", REPO, "lint", "LINT_ARGS=playbooks/audit.yml"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not (home / ".ansible" / "collections").exists(), written
    assert written == [], "make lint wrote into HOME: %s" % written
