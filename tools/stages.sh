#!/usr/bin/env bash
# Run make targets one after another, time each, and print a table of the times at the end -- also when a
# stage fails (the run stops there, as make would, and says which stage).  Usage: tools/stages.sh STAGE...
# The Makefile's `test` target passes its TEST_STAGES list; a new stage is timed by adding it to that list.
set -uo pipefail
make_cmd=${MAKE:-make}
names=() times=() results=()
overall=$(date +%s)

duration() {  # seconds -> "1m 05s" / "42s"
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%dm %02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

table() {
  local i
  echo
  echo "make test: stage times"
  printf '  %-22s %9s  %s\n' stage time result
  for i in "${!names[@]}"; do
    printf '  %-22s %9s  %s\n' "${names[$i]}" "$(duration "${times[$i]}")" "${results[$i]}"
  done
  for stage in "${skipped[@]}"; do
    printf '  %-22s %9s  %s\n' "$stage" - "not run"
  done
  printf '  %-22s %9s\n' total "$(duration $(( $(date +%s) - overall )))"
}

rc=0
skipped=()
for stage in "$@"; do
  if [ "$rc" -ne 0 ]; then skipped+=("$stage"); continue; fi
  echo "=== make $stage"
  start=$(date +%s)
  "$make_cmd" --no-print-directory "$stage"
  rc=$?
  names+=("$stage")
  times+=($(( $(date +%s) - start )))
  if [ "$rc" -eq 0 ]; then results+=(ok); else results+=("FAILED (exit $rc)"); fi
done
table
if [ "$rc" -ne 0 ]; then
  echo "make test: stage ${names[-1]} failed"
  exit "$rc"
fi
echo "make test: all stages passed"
