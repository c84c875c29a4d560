#!/usr/bin/env bash
# Install everything the Makefile targets need: Debian packages, the pinned .venv,
# the collection links, and ansible-test's offline pip bootstrap.  Idempotent and fast
# when already done.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

debs="openssh-server socat iproute2 lsof rsync e2fsprogs procps cron python3-venv python3-pip debootstrap systemd-container python3-psutil shellcheck mono-mcs mono-runtime"
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

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: creating .venv from requirements-dev.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# ansible-playbook, molecule and pytest see the working tree through a link ...
mkdir -p .build/collections/ansible_collections/residue
ln -sfn "$top" .build/collections/ansible_collections/residue/purge

# ... ansible-test needs a real directory named ansible_collections/residue/purge, and finds its offline pip
# bootstrap in ~/.ansible/test/cache (the Makefile gives ansible-test its own HOME, ATEST_HOME, under /tmp).
atest_home=${ATEST_HOME:-$HOME}
mkdir -p "$atest_home/.ansible/test/cache"
pip_version=$(grep -ohE "pip='[0-9.]+'" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1 | grep -oE "[0-9.]+")
cp tools/get_pip_standin.py "$atest_home/.ansible/test/cache/get_pip_${pip_version//./_}.py"

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
