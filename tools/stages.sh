#!/usr/bin/env bash
# Run make targets one after another, time each, and print a table of the times at the end -- also when a
# stage fails (the run stops there, as make would, and says which stage).  Usage: tools/stages.sh STAGE...
# The Makefile's `test` target passes its TEST_STAGES list; a new stage is timed by adding it to that list.
#
# `//` between stages starts another lane: `tools/stages.sh a b // c d` runs a then b, and at the same time c then
# d.  Each stage's time is its own (start to end of its make), the total is the wall time of the whole run.  In
# lanes a stage's output goes to .build/stages/STAGE.log and is printed whole when the stage ends (so the log
# reads stage by stage); a failed stage ends its lane, the other lanes start no further stage, and the run fails.
# Stages before `--` run first, one after another, before any lane starts (`tools/stages.sh bootstrap -- a // b`:
# what every lane needs, timed in the table as lane "pre"); when one fails, no lane starts.
# Next to each wall time the table has the stage's CPU time, and the run's load average at the end: a loaded
# machine stretches the wall times, hardly the CPU times (on 2 idle CPUs the run takes at least half the total).
set -uo pipefail
make_cmd=${MAKE:-make}
overall=$(date +%s)

duration() {  # seconds -> "1m 05s" / "42s"
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%dm %02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

first="" lanes=() lane=""
for arg in "$@"; do
  if [ "$arg" = -- ] && [ ${#lanes[@]} -eq 0 ] && [ -z "$first" ]; then first=$lane; lane=""
  elif [ "$arg" = // ]; then lanes+=("$lane"); lane=""
  else lane+="${lane:+ }$arg"; fi
done
lanes+=("$lane")

state=$(mktemp -d "${TMPDIR:-/tmp}/stages.XXXXXX")
trap 'rm -rf "$state"' EXIT
logs=.build/stages

# A stage's CPU time (user + system of its make and every process that make waited for, at any depth) next to its
# wall time: the wall time of a stage depends on what else the machine runs, its CPU time hardly does.
timed_make() {  # STAGE; `times` straight into a file: in a pipe it would run in a fork that has no children
  ( "$make_cmd" --no-print-directory "$1"; rc=$?; times > "$state/$1.times"; exit $rc )
}
cpu_seconds() {  # STAGE: "0m12.345s 0m1.200s" (the children's line of `times`) -> 14
  awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
         printf "%d\n", t + 0.5 }' "$state/$1.times" 2>/dev/null || echo 0
}

run_lane() {  # LANE STAGE...: each stage's "stage lane seconds rc" line goes to $state/results
  local n=$1 stage start rc log
  shift
  for stage in "$@"; do
    [ -e "$state/failed" ] && return
    start=$(date +%s)
    if [ ${#lanes[@]} -eq 1 ] || [ "$n" = pre ]; then  # alone: its output as it comes
      echo "=== make $stage"
      timed_make "$stage"
      rc=$?
    else
      log=$logs/$stage.log
      echo "=== make $stage: started (lane $n, log $log)"
      timed_make "$stage" >"$log" 2>&1 </dev/null
      rc=$?
      # the whole log at once, not interleaved with another lane's
      # shellcheck disable=SC2016  # $1.. expand in the inner bash
      flock "$state/print" bash -c 'echo "=== make $1 (lane $2, exit $3, log $4)"; cat "$4"; echo "=== end of make $1"' \
        _ "$stage" "$n" "$rc" "$log"
    fi
    echo "$stage $n $(( $(date +%s) - start )) $rc $(cpu_seconds "$stage")" >> "$state/results"
    if [ "$rc" -ne 0 ]; then touch "$state/failed"; return; fi
  done
}

# shellcheck disable=SC2086  # a lane is a list of stage names
[ -z "$first" ] || run_lane pre $first
if [ ${#lanes[@]} -eq 1 ]; then
  # shellcheck disable=SC2086
  run_lane 1 ${lanes[0]}
else
  mkdir -p "$logs"
  pids=()
  for i in "${!lanes[@]}"; do
    # shellcheck disable=SC2086
    run_lane $((i + 1)) ${lanes[$i]} &
    pids+=($!)
  done
  wait "${pids[@]}"
fi

echo
echo "make test: stage times"
if [ ${#lanes[@]} -eq 1 ]; then
  printf '  %-22s %9s  %-16s %s\n' stage time result "cpu (user+sys)"
else
  printf '  %-22s %4s %9s  %-16s %s\n' stage lane time result "cpu (user+sys)"
fi
failed=() cpu_total=0
rows=()  # "lane stage" in the order of the command line
for stage in $first; do rows+=("pre $stage"); done
for i in "${!lanes[@]}"; do
  for stage in ${lanes[$i]}; do rows+=("$((i + 1)) $stage"); done
done
for r in "${rows[@]}"; do
  read -r lane stage <<<"$r"
  line=$(grep -m1 "^$stage " "$state/results" 2>/dev/null)
  if [ -n "$line" ]; then
    read -r _ n secs rc cpu <<<"$line"
    t=$(duration "$secs") c="cpu $(duration "$cpu")"
    cpu_total=$((cpu_total + cpu))
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc)"; failed+=("$stage"); fi
  else
    n=$lane t=- result="not run" c=""
  fi
  if [ ${#lanes[@]} -eq 1 ]; then
    printf '  %-22s %9s  %-16s %s\n' "$stage" "$t" "$result" "$c"
  else
    printf '  %-22s %4s %9s  %-16s %s\n' "$stage" "$n" "$t" "$result" "$c"
  fi | sed 's/ *$//'
done
if [ ${#lanes[@]} -eq 1 ]; then
  printf '  %-22s %9s  %-16s %s\n' total "$(duration $(( $(date +%s) - overall )))" "" "cpu $(duration $cpu_total)"
else
  printf '  %-22s %4s %9s  %-16s %s\n' total "" "$(duration $(( $(date +%s) - overall )))" "(wall; lanes overlap)" \
    "cpu $(duration $cpu_total)"
fi
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; $(nproc) CPUs)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: stage(s) ${failed[*]} failed"
  exit 1
fi
if [ ! -s "$state/results" ]; then echo "make test: no stage ran"; exit 1; fi
echo "make test: all stages passed"
