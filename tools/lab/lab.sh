#!/usr/bin/env bash
# The residue.purge test lab: Linux "hosts" made of namespaces, reached by Ansible over SSH.
#
#   tools/lab/lab.sh [--lab NAME] up N     start hosts NAME-1 .. NAME-N (idempotent)
#   tools/lab/lab.sh [--lab NAME] down     stop them: kill the recorded PIDs, delete the netns
#   tools/lab/lab.sh [--lab NAME] status   one line per host
#   tools/lab/lab.sh [--lab NAME] inventory   print the path of the Ansible inventory
#   tools/lab/lab.sh [--lab NAME] snapshot    JSON manifest of everything each host changed (its overlay upper dir)
#
# Each host = its own network namespace (only lo) + a PID/mount/UTS/IPC namespace whose PID 1
# (tools/lab/init.sh) mounts an overlay of the real / on a tmpfs, its own /proc, /run, /tmp,
# and runs sshd as its child.  Requires root, iproute2, socat, openssh-server (tools/bootstrap.sh).
# State (SSH key, inventory, PIDs) lives under .build/lab/.  NAME defaults to $LAB_NAME or "lab".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=${LAB_NAME:-lab}
if [ "${1:-}" = "--lab" ]; then lab=$2; shift 2; fi
[[ "$lab" =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "lab.sh: lab name must be 1-10 of [a-z0-9], starting with a letter: '$lab'" >&2; exit 2; }
base="$top/.build/lab"
state="$base/$lab"
key="$base/id_ed25519"

die() { echo "lab.sh: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network and mount namespaces)"
  for c in ip unshare socat chroot ssh-keygen; do command -v "$c" >/dev/null || die "missing '$c': run tools/bootstrap.sh"; done
  [ -x /usr/sbin/sshd ] || die "missing /usr/sbin/sshd: run tools/bootstrap.sh"
}

# The PID we recorded is ours only while its command line still names this host's state dir.
host_pid() {
  local h=$1 pid
  pid=$(cat "$state/$h/pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$state/$h " || return 1
  echo "$pid"
}

is_gone() {  # a zombie counts as gone (this machine's PID 1 reaps late)
  local s
  s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$s" = Z ]
}

sshd_ready() { ip netns exec "$1" socat -u OPEN:/dev/null TCP:127.0.0.1:22,connect-timeout=1 2>/dev/null; }

hosts() {  # the hosts of this lab that have a state dir, in numeric order
  local d
  for d in "$state/$lab"-*; do
    [[ -d "$d" && "${d##*/}" =~ ^$lab-[0-9]+$ ]] && echo "${d##*/}"
  done | sort -t- -k2 -n
}

write_inventory() {
  local inv="$state/inventory.yml" h
  {
    echo "# written by tools/lab/lab.sh; hosts are network namespaces reached through socat"
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
  } > "$inv.tmp"
  mv "$inv.tmp" "$inv"
}

up() {
  local n=${1:-}
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 50 ]; then die "usage: lab.sh up N (1..50)"; fi
  need_root
  mkdir -p "$state"
  # one key for every lab of the checkout: labs coming up at the same time (make test's lanes) make it once
  ( flock 9; [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C residue-purge-lab -f "$key" ) 9>"$key.lock"
  local i h
  for i in $(seq 1 "$n"); do
    h="$lab-$i"
    if host_pid "$h" >/dev/null; then continue; fi
    mkdir -p "$state/$h/t"
    ip netns del "$h" 2>/dev/null || true
    ip netns add "$h"
    ip -n "$h" link set lo up
    # `ip netns exec` execs unshare, so $! is unshare's PID; --kill-child ties the host's PID 1 to it.
    setsid ip netns exec "$h" unshare --mount --pid --uts --ipc --fork --kill-child --propagation private \
      /bin/bash "$here/init.sh" "$h" "$state/$h" "$key.pub" </dev/null >"$state/$h/log" 2>&1 &
    echo $! > "$state/$h/pid"
  done
  write_inventory
  for h in $(hosts); do
    for _ in $(seq 1 100); do sshd_ready "$h" && break; sleep 0.1; done
    sshd_ready "$h" || { cat "$state/$h/log" >&2; die "$h: sshd did not come up (log above)"; }
  done
  status
}

down() {
  need_root
  local h pid
  for h in $(hosts); do
    if pid=$(host_pid "$h"); then
      kill -KILL "$pid" 2>/dev/null || true     # unshare ignores TERM; --kill-child ends the host's PID 1
      for _ in $(seq 1 100); do is_gone "$pid" && break; sleep 0.1; done
      is_gone "$pid" || echo "lab.sh: $h: PID $pid still alive" >&2
    fi
    ip netns del "$h" 2>/dev/null || true
    # the tmpfs lives in the host's own mount namespace; unmount here only if it ever leaked out
    if mountpoint -q "$state/$h/t"; then umount -l "$state/$h/t"; fi
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
    else
      echo "$h down"
    fi
  done
  [ $any = 1 ] || echo "lab '$lab': no hosts"
  [ ! -f "$state/inventory.yml" ] || echo "inventory: $state/inventory.yml"
}

# Everything a host ever wrote is in its overlay's upper dir (the lower dir is the machine's read-only base),
# so a manifest of the upper dir is a whole-host fingerprint.  Ansible's own temp files, logs and the tmpfs
# mounts (/tmp, /run, /dev/shm are not in the upper dir) are left out.
snapshot() {
  need_root
  local h pid init first=1
  echo "{"
  for h in $(hosts); do
    pid=$(host_pid "$h") || die "$h is not up"
    init=$(awk '{print $1}' "/proc/$pid/task/$pid/children")
    [ -n "$init" ] || die "$h: no init process"
    [ $first = 1 ] || echo ","
    first=0
    printf '"%s": ' "$h"
    nsenter --target "$init" --mount -- /usr/bin/python3 "$here/files/manifest.py" \
      --exclude "^$state/$h/t/upper/(root/\.ansible|var/log|var/cache/ldconfig)(/|\$)" \
      --exclude "/__pycache__(/|\$)" "$state/$h/t/upper" | sed "s#$state/$h/t/upper##"
  done
  echo "}"
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  status) status ;;
  snapshot) snapshot ;;
  inventory) [ -f "$state/inventory.yml" ] || die "lab '$lab' is not up"; echo "$state/inventory.yml" ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
