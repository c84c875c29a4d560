#!/usr/bin/env bash
# Build (once) and cache a Debian bookworm root filesystem that boots systemd under systemd-nspawn.
# Used by tests/integration/test_autostart_systemd.py; a second run finds the cache and returns at once.
# Usage: build_rootfs.sh [CACHE_DIR]   (default /var/cache/residue-purge/systemd-bookworm)
set -euo pipefail
rootfs=${1:-/var/cache/residue-purge/systemd-bookworm}
stamp="$rootfs/.residue-purge-rootfs-v2"
[ -f "$stamp" ] && exit 0
mkdir -p "$(dirname "$rootfs")"
exec 9>"$rootfs.lock"
flock 9
[ -f "$stamp" ] && exit 0
work="$rootfs.partial"
rm -rf "$work"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,libpam-systemd,python3,python3-psutil,cron,openssh-server,procps \
  bookworm "$work" http://deb.debian.org/debian >"$rootfs.log" 2>&1
# no console login prompts, a known hostname, and a root key slot for ssh
chroot "$work" systemctl mask console-getty.service getty@tty1.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo residue-systemd > "$work/etc/hostname"
mkdir -p "$work/root/.ssh" && chmod 700 "$work/root/.ssh"
touch "$work/$(basename "$stamp")"
rm -rf "$rootfs"
mv "$work" "$rootfs"
