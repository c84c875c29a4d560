#!/usr/bin/env bash
# PID 1 of one lab host (started by lab.sh inside fresh PID/mount/UTS/IPC namespaces).
# Usage: init.sh HOSTNAME STATE_DIR AUTHORIZED_KEY_FILE
set -euo pipefail
name=$1 dir=$2 pubkey=$3
t="$dir/t"
hostname "$name"
# An overlay upper dir may not live on / itself: put upper, work and the merged root on a tmpfs.
mount -t tmpfs -o size=4g,mode=755 "lab-$name" "$t"
mkdir -p "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
r="$t/root"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
mount -t tmpfs -o mode=755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
# Its own name resolves locally (facts gathering otherwise waits on DNS).
printf '127.0.0.1 localhost %s\n::1 localhost\n' "$name" > "$r/etc/hosts"
echo "$name" > "$r/etc/hostname"
mkdir -p "$r/root/.ssh" "$r/run/sshd"
chmod 700 "$r/root/.ssh" "$r/run/sshd"
cp "$pubkey" "$r/root/.ssh/authorized_keys"
chmod 600 "$r/root/.ssh/authorized_keys"
# PID 1 stays a tiny reaper (orphans of the host end up here); sshd runs as its child.
cat > "$r/run/lab-init.py" <<'PY'
import os, subprocess, sys, time
sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-o", "ListenAddress=127.0.0.1", "-o", "UsePAM=no",
                         "-o", "UseDNS=no", "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
                         "-o", "MaxStartups=100", "-o", "MaxSessions=100", "-o", "PidFile=/run/sshd.pid"])
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        time.sleep(1)
        continue
    if pid == sshd.pid:
        sys.exit("lab init: sshd exited")
PY
exec chroot "$r" /usr/bin/python3 /run/lab-init.py
