#!/usr/bin/env bash
# Lab hosts that boot real systemd (systemd-nspawn --ephemeral --boot), reached like the namespace hosts:
# each in its own network namespace (only lo), SSH through `ip netns exec NAME socat`.
#
#   tools/lab/nspawn.sh [--lab NAME] up N | down | status | inventory
#
# The root filesystem is the Debian bookworm tree built (once, cached) by tests/integration/systemd/build_rootfs.sh
# (shared with the autostart integration tests).  Every boot is ephemeral: nothing persists.
# Requires root, systemd-container, debootstrap (tools/bootstrap.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=${LAB_NAME:-sd}
if [ "${1:-}" = "--lab" ]; then lab=$2; shift 2; fi
[[ "$lab" =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "nspawn.sh: lab name must be 1-10 of [a-z0-9]: '$lab'" >&2; exit 2; }
base="$top/.build/lab"
state="$base/$lab"
key="$base/id_ed25519"
rootfs=${RESIDUE_SYSTEMD_ROOTFS:-/var/cache/residue-purge/systemd-bookworm}
build="$top/tests/integration/systemd/build_rootfs.sh"

die() { echo "nspawn.sh: $*" >&2; exit 1; }
hosts() {  # the hosts of this lab that have a state dir, in numeric order
  local d
  for d in "$state/$lab"-*; do
    [[ -d "$d" && "${d##*/}" =~ ^$lab-[0-9]+$ ]] && echo "${d##*/}"
  done | sort -t- -k2 -n
}
host_pid() {
  local h=$1 pid
  pid=$(cat "$state/$h/pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "systemd-nspawn.*--machine=$h " || return 1
  echo "$pid"
}
is_gone() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0; [ "$s" = Z ]; }
sshd_ready() { ip netns exec "$1" socat -u OPEN:/dev/null TCP:127.0.0.1:22,connect-timeout=1 2>/dev/null; }

up() {
  local n=${1:-} i h
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 10 ]; then die "usage: nspawn.sh up N (1..10)"; fi
  [ "$(id -u)" = 0 ] || die "needs root"
  command -v systemd-nspawn >/dev/null || die "missing systemd-nspawn: run tools/bootstrap.sh (systemd-container)"
  [ -x "$build" ] || die "missing $build"
  "$build" "$rootfs" || die "could not build the systemd root filesystem (see $rootfs.log)"
  mkdir -p "$state"
  # one key for every lab of the checkout: labs coming up at the same time (make test's lanes) make it once
  ( flock 9; [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C residue-purge-lab -f "$key" ) 9>"$key.lock"
  for i in $(seq 1 "$n"); do
    h="$lab-$i"
    if host_pid "$h" >/dev/null; then continue; fi
    mkdir -p "$state/$h"
    ip netns del "$h" 2>/dev/null || true
    ip netns add "$h"
    ip -n "$h" link set lo up
    setsid systemd-nspawn -q -D "$rootfs" --ephemeral --boot --register=no --keep-unit --machine="$h" --hostname="$h" \
      --network-namespace-path="/run/netns/$h" --bind-ro="$key.pub:/root/.ssh/authorized_keys" \
      </dev/null >"$state/$h/log" 2>&1 &
    echo $! > "$state/$h/pid"
  done
  write_inventory
  for h in $(hosts); do
    for _ in $(seq 1 300); do sshd_ready "$h" && break; sleep 0.1; done
    sshd_ready "$h" || { tail -20 "$state/$h/log" >&2; die "$h: sshd did not come up"; }
  done
  status
}

write_inventory() {
  local h
  {
    echo "all:"
    echo "  hosts:"
    for h in $(hosts); do echo "    $h: {ansible_host: $h}"; done
    echo "  vars:"
    echo "    ansible_user: root"
    echo "    ansible_python_interpreter: /usr/bin/python3"
    echo "    ansible_ssh_private_key_file: $key"
    echo "    ansible_ssh_common_args: >-"
    echo "      -o ProxyCommand=\"ip netns exec %h socat - TCP:127.0.0.1:22\""
    echo "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
  } > "$state/inventory.yml"
}

down() {
  local h pid
  for h in $(hosts); do
    if pid=$(host_pid "$h"); then
      kill -TERM "$pid" 2>/dev/null || true     # nspawn powers the container off cleanly
      for _ in $(seq 1 150); do is_gone "$pid" && break; sleep 0.1; done
      if ! is_gone "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do is_gone "$pid" && break; sleep 0.1; done
      fi
      is_gone "$pid" || echo "nspawn.sh: $h: PID $pid still alive" >&2
    fi
    ip netns del "$h" 2>/dev/null || true
    rm -rf "${state:?}/$h"
  done
  rm -f "$state/inventory.yml"
  rmdir "$state" 2>/dev/null || true
}

status() {
  local h pid any=0
  for h in $(hosts); do
    any=1
    if pid=$(host_pid "$h"); then
      if sshd_ready "$h"; then echo "$h up pid=$pid sshd=listening"; else echo "$h up pid=$pid sshd=down"; fi
    else echo "$h down"; fi
  done
  [ $any = 1 ] || echo "lab '$lab': no hosts"
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  status) status ;;
  inventory) [ -f "$state/inventory.yml" ] || die "lab '$lab' is not up"; echo "$state/inventory.yml" ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
