#!/usr/bin/env bash
# Build (once) a Debian 12 guest whose kernel runs cgroup v2 only, for tests/v2guest.
#
# The host's cgroups are hybrid (v1 controllers, an empty v2 `unified` mount), so the v2
# backend can only meet a real v2 kernel in a guest. /dev/kvm here cannot run a stock kernel,
# so the guest runs under qemu's software emulation (-accel tcg): see run.sh.
#
# Result, in ${MINIDOCKER_GUEST_CACHE:-/var/cache/minidocker/v2-guest}:
#   base.raw      raw ext4 root filesystem (no partition table: root=/dev/vda), never written
#                 by a run (each run boots a qcow2 overlay on top of it)
#   vmlinuz, initrd.img   the guest's own kernel and initramfs, for qemu -kernel/-initrd
#   cmdline       the kernel command line (systemd.unified_cgroup_hierarchy=1 ...)
#   id_ed25519    root's ssh key for the guest (0600); the guest trusts its .pub
#   wheels/       the wheelhouse the guest's venv was installed from (minidocker's dependencies,
#                 pytest, setuptools and wheel for an editable build): MINIDOCKER_WHEELS for
#                 `vagrant/provision.sh --course` in the guest, which then installs offline
#   stamp         what the image was built from; a different recipe rebuilds it
#
# Built in a temporary directory next to the cache and renamed into place, so a failed or
# interrupted build never leaves a half image behind. Needs root, debootstrap, e2fsprogs.
# Usage: vagrant/v2-guest/build.sh [--force]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MINIDOCKER_GUEST_CACHE:-/var/cache/minidocker/v2-guest}
mirror=${MINIDOCKER_GUEST_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
size=${MINIDOCKER_GUEST_DISK:-3G}
packages=(
  linux-image-amd64 systemd-sysv udev dbus openssh-server
  python3 python3-venv busybox-static iproute2 iptables procps kmod
)
# and what `provision.sh --course` installs, so that it finds every package in place and
# never calls apt in the guest (which has no internet in the tests). apt-get installs these
# after debootstrap: debootstrap's own resolver fails to configure skopeo's dependencies.
read -r -a course <<<"$("$repo/vagrant/provision.sh" --course-packages)"
# Everything that shapes the image goes into the stamp: change it and the image is rebuilt.
recipe="v4 $suite $mirror $size ${packages[*]} course:${course[*]} deps:$(cat "$repo/pyproject.toml" "$0" | sha256sum | cut -c1-16)"

log() { echo "build.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "run as root (debootstrap and chroot need it)"; exit 1
fi
if [ "${1:-}" != "--force" ] && [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$recipe" ]; then
  log "cached: $cache"; exit 0
fi
for tool in debootstrap mke2fs chroot; do
  command -v "$tool" >/dev/null || { log "missing $tool (apt-get install debootstrap e2fsprogs)"; exit 1; }
done

mkdir -p "$(dirname "$cache")"
tmp=$(mktemp -d "$(dirname "$cache")/.v2-guest.build.XXXXXX")
root=$tmp/root
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
start=$SECONDS

# 1. The Python dependencies as wheels, built here with the host's tools (python-prctl is C
#    and needs libcap-dev + gcc; the host has them, the guest then needs neither). The host's
#    venv and the guest's python3 are both CPython 3.11 on Debian 12's glibc.
deps=$(python3 - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
# setuptools and wheel: the editable install's isolated build environment, offline
print(" ".join(p["dependencies"] + ["pytest>=8", "setuptools>=68", "wheel"]))
EOF
)
pip=$repo/.venv/bin/pip
[ -x "$pip" ] || pip="python3 -m pip"
log "wheels: $deps"
# shellcheck disable=SC2086
$pip wheel -q --wheel-dir "$tmp/wheels" $deps

# 2. The root filesystem.
log "debootstrap $suite from $mirror"
include=$(IFS=,; echo "${packages[*]}")
debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
  tail -30 "$tmp/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }

cat >"$root/etc/fstab" <<'EOF'
/dev/vda  /  ext4  rw,errors=remount-ro  0  1
EOF
echo v2guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 v2guest\n' >"$root/etc/hosts"
echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf"   # qemu user-mode networking's DNS
echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-eth.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# Nothing periodic that could run during a test and skew the CPU measurement.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
            systemd-tmpfiles-clean.timer systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Fast ssh: no DNS lookups of the client.
echo "UseDNS no" >"$root/etc/ssh/sshd_config.d/v2guest.conf"

# root logs in with a key generated for this image only.
ssh-keygen -q -t ed25519 -N '' -C minidocker-v2-guest -f "$tmp/id_ed25519"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$tmp/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
# A root password is not set: only the key opens the guest (ssh listens on 127.0.0.1 only).

# 3. A virtualenv with minidocker's dependencies; the project itself is copied in per run.
for fs in proc sys dev; do
  mount --bind "/$fs" "$root/$fs"; mounted+=("$root/$fs")
done
# the course's packages, with the host's resolver for apt and no service started in a chroot
log "apt-get install ${course[*]}"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
{ chroot "$root" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$root" \
    apt-get install -y -q --no-install-recommends "${course[@]}"; } >"$tmp/apt.log" 2>&1 || {
  tail -30 "$tmp/apt.log" >&2; log "apt-get install in the guest failed"; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d" "$tmp/apt.log"
# Debian's docker-registry unit (every address, basic auth) stays off, as provision.sh leaves
# it: the tests' registries take 127.0.0.1:5000, and the course VM its own unit
rm -f "$root/etc/systemd/system/multi-user.target.wants/docker-registry.service"
echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf"
cp -r "$tmp/wheels" "$root/tmp/wheels"
chroot "$root" python3 -m venv /opt/venv
chroot "$root" /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels $(cd "$tmp/wheels" && ls *.whl | sed 's/-.*//' | sort -u) \
  >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; log "pip install in the guest failed"; exit 1; }
rm -rf "$root/tmp/wheels"
chroot "$root" /opt/venv/bin/python -c "import prctl, typer, rich, httpx, pyroute2, cgroupspy, zstandard, isal"
for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}"; done
mounted=()
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*

# 4. Kernel and initramfs for -kernel/-initrd booting (no bootloader in the image).
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$tmp/vmlinuz"
cp "$initrd" "$tmp/initrd.img"
echo "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet" >"$tmp/cmdline"

# 5. The directory becomes an ext4 image without a loop mount (mke2fs -d copies owners,
#    modes, hard links and xattrs).
log "mke2fs ($size)"
truncate -s "$size" "$tmp/base.raw"
mke2fs -q -t ext4 -L v2guest -E root_owner=0:0 -d "$root" "$tmp/base.raw"
rm -rf "$root"

chmod 0600 "$tmp/id_ed25519"
chmod 0644 "$tmp/base.raw" "$tmp/vmlinuz" "$tmp/initrd.img"
echo "$recipe" >"$tmp/stamp"
rm -f "$tmp/debootstrap.log" "$tmp/pip.log" "$tmp/id_ed25519.pub"
chmod 0755 "$tmp/wheels" && chmod 0644 "$tmp/wheels"/*

# 6. Into place: the old cache (if any) goes aside first, then the new one is renamed in.
if [ -e "$cache" ]; then
  mv "$cache" "$tmp.old"
  mv "$tmp" "$cache"
  rm -rf "$tmp.old"
else
  mv "$tmp" "$cache"
fi
trap - EXIT
log "built $cache in $((SECONDS - start)) s ($(du -sh --apparent-size "$cache/base.raw" | cut -f1) apparent, $(du -sh "$cache" | cut -f1) on disk)"
