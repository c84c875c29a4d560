#!/usr/bin/env bash
# make demo: seed a fake Open-AutoGLM installation under a throwaway home and inventory it with discover.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$top/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$top/.build/collections" ANSIBLE_LOCALHOST_WARNING=0 \
  ANSIBLE_INVENTORY_UNPARSED_WARNING=0
sandbox=$(mktemp -d /tmp/residue-demo.XXXXXX)
trap 'rm -rf "$sandbox"' EXIT
home="$sandbox/home/alice"
python3 "$top/tools/demo/seed_sandbox.py" "$home"
echo "== seeded a fake Open-AutoGLM installation under $home"
ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$top/.venv/bin/python" \
  -e "demo_home=$home" -e "demo_report=$sandbox/discover.json" "$top/tools/demo/discover.yml"
python3 - "$sandbox/discover.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("== discover found %d residues, %d bytes in all" % (len(r["residues"]), r["total_bytes"]))
for x in r["residues"]:
    what = x.get("repo_id") or x["path"]
    print("  %-13s %-8s %10d bytes %5d files  %s" % (x["target"], x["kind"], x["bytes"], x["files"], what))
for c in r["hf_caches"]:
    print("  HF cache %s (%s)" % (c["path"], c["source"]))
PY
