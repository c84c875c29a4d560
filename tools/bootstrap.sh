#!/usr/bin/env bash
# Install everything the Makefile targets need: Debian packages, the pinned .venv,
# the collection links, and ansible-test's offline pip bootstrap.  Idempotent and fast
# when already done.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

debs="openssh-server eatmydata socat iproute2 lsof rsync e2fsprogs procps cron python3-venv python3-pip debootstrap systemd-container python3-psutil shellcheck mono-mcs mono-runtime libmono-system-io-compression4.0-cil"
missing=()
for p in $debs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages (need root to install): ${missing[*]}" >&2
  fi
fi

# The venvs (.venv and one per older ansible-core, below) are built at the same time: a fresh machine's build
# waits on downloads far more than on the CPU (2m36s wall for 54s CPU one after another), and each pip has its
# own venv; each build's output goes to its pip.log, shown when it fails.
builds=()
build_venv() {  # DIR REQUIREMENTS: a fresh venv DIR with REQUIREMENTS installed, in the background
  local venv=$1 req=$2
  echo "bootstrap: creating $venv from $req"
  rm -rf "$venv"
  (
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" \
             >"$venv/pip.log" 2>&1; }; then
      echo "bootstrap: building $venv from $req failed:" >&2
      cat "$venv/pip.log" >&2 || true
      exit 1
    fi
    sha256sum "$req" | cut -d' ' -f1 > "$venv/.requirements.sha256"
  ) &
  builds+=("$!")
}

want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  build_venv .venv requirements-dev.txt
fi

# ansible-playbook, molecule and pytest see the working tree through a link ...
mkdir -p .build/collections/ansible_collections/residue
ln -sfn "$top" .build/collections/ansible_collections/residue/purge

# Every older ansible-core minor release we claim (meta/runtime.yml) gets a venv of its own for ansible-test
# (make sanity CORE=2.17); the newest is .venv's.
for req in tests/ci/ansible-core-*.txt; do
  core=${req##*/ansible-core-}; core=${core%.txt}
  venv=.build/core-$core
  core_want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/ansible-test" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$core_want" ]; then
    build_venv "$venv" "$req"
  fi
done
failed=0
for pid in "${builds[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || exit 1

# ... ansible-test needs a real directory named ansible_collections/residue/purge, and finds its offline pip
# bootstrap in ~/.ansible/test/cache (the Makefile gives ansible-test its own HOME, ATEST_HOME, under /tmp):
# one stand-in per pip version that an installed ansible-test pins.
atest_home=${ATEST_HOME:-$HOME}
mkdir -p "$atest_home/.ansible/test/cache"
grep -ohE "pip='[0-9.]+'" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py \
    .build/core-*/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | grep -oE "[0-9.]+" | sort -u |
  while read -r pip_version; do
    cp tools/get_pip_standin.py "$atest_home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
  done

# Module code runs on the managed host's Python, 3.8 and newer: make py38 runs ansible-test on Python 3.8, which
# it finds as python3.8 on PATH (the Makefile adds .build/python). Nothing here can download an interpreter
# (python.org is out of reach); pyenv's, where the machine has one, is linked.
mkdir -p .build/python
py38=
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.8.*/bin/python3.8 $(type -ap python3.8 | grep -v /shims/); do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 8))' 2>/dev/null; then
    py38=$candidate
    break
  fi
done
if [ -n "$py38" ]; then
  ln -sfn "$py38" .build/python/python3.8
else
  rm -f .build/python/python3.8
  echo "bootstrap: no Python 3.8 (python3.8 on PATH or pyenv's 3.8.x): make py38 will fail" >&2
fi

# awx.awx (awx/apply.yml, ansible-lint, tests/integration/test_awx_controller.py) comes out of the pinned `ansible` wheel of requirements-awx.txt:
# only that collection is extracted into .build/collections; nothing of it goes into .venv.
awx_dir=.build/collections/ansible_collections/awx/awx
awx_want=$(sha256sum requirements-awx.txt | cut -d' ' -f1)
if [ "$(cat "$awx_dir/.residue-stamp" 2>/dev/null)" != "$awx_want" ]; then
  echo "bootstrap: extracting awx.awx from the pinned ansible wheel (requirements-awx.txt)"
  mkdir -p .build/downloads
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --require-hashes -r requirements-awx.txt \
    -d .build/downloads 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  wheel=$(ls .build/downloads/ansible-"$(sed -n 's/^ansible==\([0-9.]*\).*/\1/p' requirements-awx.txt)"-py3-none-any.whl)
  rm -rf "$awx_dir"
  .venv/bin/python - "$wheel" .build/collections <<'PY'
import sys, zipfile
prefix = "ansible_collections/awx/awx/"
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith(prefix)])
PY
  echo "$awx_want" > "$awx_dir/.residue-stamp"
fi
