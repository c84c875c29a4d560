#!/usr/bin/env bash
# Run every molecule scenario (molecule/<name>/molecule.yml): each creates its lab hosts, seeds them, runs
# the playbook, checks idempotence, verifies with testinfra and destroys the lab -- also when a step fails
# (molecule's --destroy=always, and a trap here for a molecule that dies).  Usage: tools/molecule-all.sh [NAME...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export MOLECULE_GLOB='molecule/*/molecule.yml' ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0
if [ $# -gt 0 ]; then names=("$@"); else
  names=()
  for s in molecule/*/molecule.yml; do names+=("$(basename "$(dirname "$s")")"); done
fi
if [ ${#names[@]} -eq 0 ]; then echo "molecule: no scenarios"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "molecule: the lab needs root (network and mount namespaces); run as root" >&2
  exit 1
fi
teardown() {  # the lab names each scenario uses (LAB_NAME in its molecule.yml)
  local s lab script
  for s in "${names[@]}"; do
    lab=$(sed -n 's/^ *LAB_NAME: *//p' "molecule/$s/molecule.yml")
    script=$(sed -n 's/^ *LAB_SCRIPT: *//p' "molecule/$s/molecule.yml")
    [ -n "$lab" ] && tools/lab/"${script:-lab.sh}" --lab "$lab" down >/dev/null 2>&1
  done
}
trap teardown EXIT
failed=()
for name in "${names[@]}"; do
  start=$(date +%s)
  echo "=== molecule test -s $name"
  if molecule test -s "$name" --destroy=always; then
    echo "=== $name: passed in $(( $(date +%s) - start )) s"
  else
    echo "=== $name: FAILED after $(( $(date +%s) - start )) s"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "molecule: failed scenarios: ${failed[*]}"; exit 1; fi
echo "molecule: all ${#names[@]} scenario(s) passed"
