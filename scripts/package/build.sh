#!/usr/bin/env bash
# `npm run package`: builds the Debian packages trygghetskamera_<version>_<arch>.deb for amd64, arm64
# and armhf from this checkout, with no compiler, build step or network needed on the Pi.
#
# Each package holds, under /opt/trygghetskamera: the compiled service (dist/), production
# node_modules with their native addons built for the package's architecture, and the Node runtime
# itself (node/bin/node, taken from the npm registry's node-linux-<cpu> package; docs/install.md
# says why a bundled runtime rather than a Depends). Plus the systemd unit, the technician's tool
# /usr/bin/trygghetskamera-provision and maintainer scripts doing what scripts/install.sh did.
#
# Native addons: koffi ships prebuilt binaries per platform as optional npm packages
# (@koromix/koffi-linux-<cpu>), which `npm ci --cpu=<cpu>` selects; epoll (onoff's edge detection)
# is compiled with node-gyp against the bundled runtime's own headers (--nodedir), for arm with
# Debian's cross compilers (g++-aarch64-linux-gnu, g++-arm-linux-gnueabihf).
#
# Everything downloaded is cached in ~/.cache/trygghetskamera-package (TK_PACKAGE_CACHE); a second run needs the network only for
# what npm's own cache lacks. Output: .tmp/package/out/*.deb (or --out DIR), and a lintian report.
set -Eeuo pipefail
umask 022
export LC_ALL=C
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
readonly REPO=$PWD
readonly NAME=trygghetskamera

usage() {
  cat <<USAGE
Usage: scripts/package/build.sh [options]      (npm run package -- [options])

Options:
  --arch LIST      comma-separated Debian architectures (default: amd64,arm64,armhf)
  --version V      package version (default: package.json's version); also written into the
                   packaged package.json, so the device reports it as its firmware version
  --out DIR        where the .deb files go (default: .tmp/package/out)
  --no-build       use the existing dist/ (default: npm run build first)
  --no-lintian     do not run lintian
  --apt            install missing build tools with apt-get (root)
  --fast           gzip -1 instead of xz -6 (tests: a few seconds instead of minutes; larger file)
  -h, --help       this help
USAGE
}

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'package: error: %s\n' "$*" >&2
  exit 1
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

ARCHES=amd64,arm64,armhf
VERSION=
OUT=$REPO/.tmp/package/out
BUILD=1
LINTIAN=1
APT=0
COMPRESS=(-Zxz -z6)
while (($#)); do
  case $1 in
    --arch) ARCHES=${2:?--arch needs a list}; shift 2 ;;
    --version) VERSION=${2:?--version needs a value}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-lintian) LINTIAN=0; shift ;;
    --apt) APT=1; shift ;;
    --fast) COMPRESS=(-Zgzip -z1); shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[[ -n $VERSION ]] || VERSION=$(node -p 'require("./package.json").version')
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "not a Debian version: $VERSION"
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)

readonly WORK=$REPO/.tmp/package
# shellcheck source=scripts/package/runtime.sh
source scripts/package/runtime.sh
readonly CACHE=$PACKAGE_CACHE
mkdir -p -- "$CACHE"

# --- Tools --------------------------------------------------------------------------------------

need_tools() {
  local wanted=(dpkg-deb:dpkg file:file python3:python3 make:make)
  local arch
  IFS=, read -ra list <<<"$ARCHES"
  for arch in "${list[@]}"; do
    case $arch in
      amd64) wanted+=(g++:g++) ;;
      arm64) wanted+=(aarch64-linux-gnu-g++:g++-aarch64-linux-gnu) ;;
      armhf) wanted+=(arm-linux-gnueabihf-g++:g++-arm-linux-gnueabihf) ;;
      *) die "unknown architecture: $arch (amd64, arm64, armhf)" ;;
    esac
  done
  ((LINTIAN)) && wanted+=(lintian:lintian)
  local missing=() pair
  for pair in "${wanted[@]}"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  ((APT)) || die "missing tools, install with: apt-get install ${missing[*]} (or pass --apt)"
  step "Installing build tools: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# node-gyp reads npm's npm_config_* variables, which `npm run package` sets for the host's Node (its
# version, headers and ABI) and which would win over --nodedir: run it without them.
node_gyp() {
  local gyp
  gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
  [[ -f $gyp ]] || die "node-gyp not found at $gyp (it comes with npm)"
  local unset=() name
  while IFS= read -r name; do unset+=(-u "$name"); done < <(env | sed -n 's/^\(npm_[A-Za-z0-9_]*\)=.*/\1/p')
  env "${unset[@]}" node "$gyp" "$@"
}

# --- One architecture ---------------------------------------------------------------------------

# Production node_modules for ARCH in STAGE/node_modules, without running any install script: the
# only addon that needs building (epoll) is built below for the target, not for this machine.
# The fleet service's dependencies (package.json's fleetOnlyDependencies: SQLite, PostgreSQL,
# Prometheus) are dropped first: the device never loads them (test/scripts/package-deps.test.ts
# checks that), and `npm install` from the lockfile removes them and whatever only they need,
# keeping every other version as locked.
production_modules() {
  local arch=$1 stage=$2 cpu
  cpu=$(npm_cpu "$arch")
  cp -p -- package.json package-lock.json "$stage/"
  local fleet_only
  fleet_only=$(node -p 'require("./package.json").fleetOnlyDependencies.map((d) => `dependencies.${d}`).join(" ")')
  # shellcheck disable=SC2086 # one word per dependency
  (cd -- "$stage" && npm pkg delete $fleet_only fleetOnlyDependencies &&
    npm install --omit=dev --ignore-scripts --os=linux --cpu="$cpu" --libc=glibc \
      --no-audit --no-fund --loglevel=error >/dev/null)
  local name
  for name in $(node -p 'require("./package.json").fleetOnlyDependencies.join(" ")'); do
    [[ ! -e $stage/node_modules/$name ]] || die "fleet-only dependency $name is still in the package"
  done
  [[ -d $stage/node_modules/@koromix/koffi-linux-$cpu ]] ||
    die "koffi's prebuilt package @koromix/koffi-linux-$cpu was not installed"
  # koffi ships musl and glibc builds; Raspberry Pi OS is glibc.
  find "$stage/node_modules/@koromix" -mindepth 2 -maxdepth 2 -type d -name 'musl_*' -exec rm -rf -- {} +
}

build_epoll() {
  local arch=$1 stage=$2 nodedir=$3 gyparch cross
  gyparch=$(gyp_arch "$arch")
  cross=$(cross_prefix "$arch")
  local dir=$stage/node_modules/epoll
  [[ -f $dir/binding.gyp ]] || die "epoll is not in the production dependencies"
  (
    cd -- "$dir"
    export CC=${cross}gcc CXX=${cross}g++ LINK=${cross}g++ AR=${cross}ar
    node_gyp rebuild --silent --arch="$gyparch" --target="$(runtime_version "$arch")" --nodedir="$nodedir" -j 2 >/dev/null
  )
  # node-gyp leaves Makefiles and object files naming the build path; only the .node is needed.
  find "$dir/build" -mindepth 1 ! -type d ! -path "$dir/build/Release/epoll.node" -delete
  find "$dir/build" -mindepth 1 -type d -empty -delete
  "${cross}strip" --strip-unneeded "$dir/build/Release/epoll.node"
  # The addon must load in the runtime it ships with (ABI = NODE_MODULE_VERSION); checked directly
  # for amd64, and under qemu for arm by scripts/test-package.
  if [[ $arch == amd64 && $(uname -m) == x86_64 ]]; then
    "$nodedir/bin/node" -e "require('$dir/build/Release/epoll.node')" ||
      die "epoll.node does not load in Node $(runtime_version "$arch")"
  fi
  file -b "$dir/build/Release/epoll.node" | grep -q "$(file_machine "$arch")" ||
    die "epoll.node is not a $arch binary: $(file -b "$dir/build/Release/epoll.node")"
}

# Files the package does not need at run time (tests, sources of addons, docs of dependencies).
# Kept small on purpose: removing the wrong file breaks a dependency at run time.
prune_modules() {
  local modules=$1
  find "$modules" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name example \
    -o -name examples -o -name .github -o -name .husky -o -name integration-test \) -prune -exec rm -rf -- {} +
  # TypeScript (sources and .d.ts declarations) and @types/: never loaded at run time.
  rm -rf -- "$modules/@types"
  find "$modules" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.ts.map' -o -name '*.js.map' \
    -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
    -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '*.gyp' -o -name '*.gypi' \
    -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '.git*' -o -name '*.html' -o -name '*.sh' \) \
    ! -name 'LICENSE*' -delete
  # Build-time only: nan (headers for compiling epoll), koffi's C++ sources and its build tool.
  # (koffi/src/koffi/ holds its JavaScript loader too: only the C++ files above go.) .bin: npm's
  # command links, never run on the device.
  rm -rf -- "$modules/nan" "$modules/koffi/src/koffi/CMakeLists.txt" "$modules/koffi/vendor" \
    "$modules/koffi/doc" "$modules/koffi/cnoke.cjs" "$modules/.bin"
  find "$modules/koffi" -type f \( -name '*.hh' -o -name '*.inc' -o -name '*.S' -o -name '*.asm' -o -name '*.def' \) -delete
  find "$modules" -depth -type d -empty -delete
  # npm keeps each package's own modes; Debian wants 0644 files and 0755 directories, executables
  # only where something is run (nothing in node_modules is run directly: the runtime loads it).
  find "$modules" -type d -exec chmod 0755 {} +
  find "$modules" -type f -exec chmod 0644 {} +
}

package_arch() {
  local arch=$1 started=$SECONDS
  step "[$arch] Node runtime"
  local nodedir
  nodedir=$(fetch_runtime "$arch")
  info "$(runtime_version "$arch") from $(runtime_npm_package "$arch")"

  local stage=$WORK/stage/$arch root=$WORK/root/$arch
  rm -rf -- "$stage" "$root"
  mkdir -p -- "$stage" "$root"
  step "[$arch] Production dependencies, without the fleet's (npm install --omit=dev --cpu=$(npm_cpu "$arch"))"
  production_modules "$arch" "$stage"
  step "[$arch] Building epoll with $(cross_prefix "$arch")g++ against Node $(runtime_version "$arch") headers"
  build_epoll "$arch" "$stage" "$nodedir"
  prune_modules "$stage/node_modules"

  step "[$arch] Assembling the tree"
  local opt=$root/opt/$NAME
  install -d -m 0755 "$opt" "$opt/node/bin" "$opt/docs" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/usr/share/doc/$NAME" "$root/usr/share/lintian/overrides" "$root/DEBIAN"
  # The device service and the technician's tool; the fleet service is not part of a device.
  install -d -m 0755 "$opt/dist"
  cp -R -- dist/device dist/provisioning "$opt/dist/"
  find "$opt/dist" -name '*.map' -delete
  mv -- "$stage/node_modules" "$opt/node_modules"
  node -e '
    const fs = require("node:fs");
    const [from, to, version] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(from, "utf8"));
    pkg.version = version;
    for (const name of pkg.fleetOnlyDependencies) delete pkg.dependencies[name];
    delete pkg.fleetOnlyDependencies;
    delete pkg.devDependencies;
    delete pkg.scripts;
    fs.writeFileSync(to, JSON.stringify(pkg, null, 2) + "\n");' package.json "$opt/package.json" "$VERSION"
  install -m 0755 "$nodedir/bin/node" "$opt/node/bin/node"
  # The official binary carries its symbol table and debug information; the dynamic symbol
  # table, which addons link against, stays (strip never removes .dynsym).
  "$(cross_prefix "$arch")strip" --strip-all "$opt/node/bin/node"
  install -m 0644 "$nodedir/LICENSE" "$opt/node/LICENSE"
  install -m 0644 docs/install.md docs/technician.md "$opt/docs/"
  # The unit of the checkout runs /usr/bin/node (install.sh's runtime); the package runs its own.
  sed 's|^ExecStart=/usr/bin/node |ExecStart=/opt/trygghetskamera/node/bin/node |' \
    "systemd/$NAME.service" >"$root/lib/systemd/system/$NAME.service"
  grep -q '^ExecStart=/opt/trygghetskamera/node/bin/node ' "$root/lib/systemd/system/$NAME.service" ||
    die "the unit's ExecStart was not rewritten"
  install -m 0644 "systemd/$NAME-update.service" "systemd/$NAME-update.path" "$root/lib/systemd/system/"
  chmod 0644 "$root/lib/systemd/system/$NAME.service"
  install -m 0755 scripts/package/debian/provision-wrapper "$root/usr/bin/$NAME-provision"
  install -m 0644 scripts/package/debian/copyright "$root/usr/share/doc/$NAME/copyright"
  install -d -m 0755 "$root/usr/share/man/man1"
  gzip -9n <scripts/package/debian/$NAME-provision.1 >"$root/usr/share/man/man1/$NAME-provision.1.gz"
  chmod 0644 "$root/usr/share/man/man1/$NAME-provision.1.gz"
  install -m 0644 scripts/package/debian/lintian-overrides "$root/usr/share/lintian/overrides/$NAME"
  changelog "$root/usr/share/doc/$NAME/changelog.gz"
  # Reproducible: every file gets the time of the last commit.
  local epoch
  epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)

  step "[$arch] Control files"
  local size depends
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  depends=$(runtime_depends "$arch")
  sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    -e "s|@NODE@|$(runtime_version "$arch")|" scripts/package/debian/control.in >"$root/DEBIAN/control"
  local script
  for script in preinst postinst prerm postrm; do
    install -m 0755 "scripts/package/debian/$script" "$root/DEBIAN/$script"
  done
  (cd -- "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
  chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
  find "$root" -exec touch -h -d "@$epoch" {} +

  step "[$arch] dpkg-deb"
  local deb=$OUT/${NAME}_${VERSION}_${arch}.deb
  SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group "${COMPRESS[@]}" --build "$root" "$deb" >/dev/null
  info "$deb: $(du -h "$deb" | cut -f1) (installed $((size / 1024)) MB) in $((SECONDS - started)) s"
  if ((LINTIAN)); then
    step "[$arch] lintian"
    local report=$OUT/${NAME}_${VERSION}_${arch}.lintian.txt
    # Every tag in the report; the summary counts them (overridden ones are listed with O:).
    lintian --pedantic --show-overrides --tag-display-limit 0 "$deb" >"$report" 2>&1 || true
    local summary
    summary=$(grep -E '^[EWIPXO]: ' "$report" | awk '{print $1, $3}' | sort | uniq -c | sort -rn || true)
    if [[ -n $summary ]]; then printf '%s\n' "$summary" | sed 's/^/    /'; else info "lintian: clean"; fi
    info "full report: $report"
  fi
}

changelog() {
  local to=$1
  printf '%s (%s) stable; urgency=medium\n\n  * Release %s, built from %s.\n\n -- Trygghetskamera firmware team <firmware@trygghetskamera.invalid>  %s\n' \
    "$NAME" "$VERSION" "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a checkout')" \
    "$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" | gzip -9n >"$to"
  chmod 0644 "$to"
}

need_tools
if ((BUILD)); then
  step "npm run build"
  rm -rf dist
  npm run --silent build
fi
[[ -f dist/device/main.js && -f dist/provisioning/cli.js ]] || die "dist/ is not built (npm run build)"
IFS=, read -ra list <<<"$ARCHES"
for arch in "${list[@]}"; do package_arch "$arch"; done
step "Done: $(ls "$OUT"/*.deb | wc -l) package(s) in $OUT"
