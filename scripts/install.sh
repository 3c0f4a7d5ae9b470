#!/usr/bin/env bash
# Installs, upgrades or removes the trygghetskamera service on a Raspberry Pi (run as root from a
# built checkout: `npm ci && npm run build && sudo scripts/install.sh`). docs/install.md is the
# technician's guide. Running it again changes nothing; an upgrade keeps the config and the state.
#
# --root DIR installs into a throwaway tree for tests and never touches the host: no apt-get, no
# systemctl, and the user and groups are written straight into DIR/etc/passwd and DIR/etc/group
# (plus shadow/gshadow if DIR has them). useradd --root would chroot and needs a whole system in
# DIR; editing the files is what the test can check without side effects. On a real install the
# system's own groupadd/useradd/usermod do the work (they take the locks and keep shadow in step).
set -Eeuo pipefail
umask 022
export LC_ALL=C

readonly NAME=trygghetskamera
# openssl: the provisioning tool makes the device key and CSR with it; v4l-utils: v4l2-ctl lists the
# camera's formats (provisioning, and the service's health info). A Debian minimal system has neither.
# tzdata: the check-in windows' time zone from /usr/share/zoneinfo (required in Debian 12, not after).
readonly APT_PACKAGES=(ffmpeg fswebcam openssl v4l-utils tzdata)
readonly DEVICE_GROUPS=(video gpio)

usage() {
  cat <<EOF
Usage: install.sh [options]

Installs the built service from this checkout into /opt/$NAME, creates the system user
$NAME (groups video, gpio), the directories /etc/$NAME (0750) and /var/lib/$NAME (0700;
the audit log is in /var/lib/$NAME/audit), installs the technician's tool as
/usr/local/bin/$NAME-provision, installs and enables the systemd unit. Run as root.

Options:
  --from DIR     checkout to install from (default: the one holding this script); it must have
                 been built: DIR/dist/device/main.js
  --root DIR     install into DIR instead of / (tests): no apt-get, no systemctl, user and
                 groups written into DIR/etc/passwd and DIR/etc/group
  --no-apt       do not install the system packages (${APT_PACKAGES[*]})
  --no-deps      do not install production node_modules (npm ci --omit=dev); keep what is there
  --uninstall    stop and remove the service, program, tool, unit, config and state; keep the
                 audit log (/var/lib/$NAME/audit) and the user that owns it
  --purge        with --uninstall: also remove the audit log, all state and the user and group
  -h, --help     show this help
EOF
}

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

FROM=
ROOT=
APT=1
DEPS=1
UNINSTALL=0
PURGE=0
while (($#)); do
  case $1 in
    --from) (($# >= 2)) || die "--from needs a directory"; FROM=$2; shift 2 ;;
    --root) (($# >= 2)) || die "--root needs a directory"; ROOT=$2; shift 2 ;;
    --no-apt) APT=0; shift ;;
    --no-deps) DEPS=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
((PURGE == 0 || UNINSTALL == 1)) || die "--purge only goes with --uninstall"

if [[ -n $ROOT ]]; then
  [[ -d $ROOT ]] || die "--root $ROOT is not a directory"
  ROOT=$(cd -- "$ROOT" && pwd -P)
  [[ $ROOT != / ]] || die "--root / is the host: leave --root out for a real install"
fi
[[ -n $FROM ]] || FROM=$(dirname -- "${BASH_SOURCE[0]}")/..
[[ -d $FROM ]] || die "--from $FROM is not a directory"
FROM=$(cd -- "$FROM" && pwd -P)

# Owners are only set when running as root; a non-root run is only useful with --root.
AS_ROOT=0
[[ $EUID -eq 0 ]] && AS_ROOT=1
if ((AS_ROOT == 0)); then
  [[ -n $ROOT ]] || die "run as root (sudo scripts/install.sh)"
  warn "not root: files in $ROOT keep your ownership"
fi

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf -- "$WORK"' EXIT

readonly OPT=$ROOT/opt/$NAME
readonly ETC=$ROOT/etc/$NAME
readonly STATE=$ROOT/var/lib/$NAME
readonly AUDIT=$STATE/audit
# Created by earlier versions (and by the unit's former LogsDirectory=) but never written: the
# service keeps its audit log in $AUDIT. Removed when empty; --purge removes it in any case.
readonly OLD_LOGS=$ROOT/var/log/$NAME
readonly UNIT_DIR=$ROOT/etc/systemd/system
readonly UNIT=$UNIT_DIR/$NAME.service
readonly BIN_DIR=$ROOT/usr/local/bin
readonly TOOL=$BIN_DIR/$NAME-provision
CHANGED=0

# systemctl only for a real install on a host that runs systemd.
use_systemctl() { [[ -z $ROOT ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; }

# --- Accounts ----------------------------------------------------------------------------------

# Prints the numeric id of a user (passwd) or group (group) from ROOT's files, or nothing.
lookup_id() {
  local file=$1 name=$2
  [[ -f $ROOT/etc/$file ]] || return 0
  awk -F: -v name="$name" '$1 == name { print $3; exit }' "$ROOT/etc/$file"
}

# Highest id in the system range (100-999) free in both passwd and group of ROOT, as useradd --system picks.
free_system_id() {
  local id
  for ((id = 999; id >= 100; id--)); do
    if ! awk -F: -v id="$id" '$3 == id { found = 1 } END { exit !found }' \
      "$ROOT/etc/passwd" "$ROOT/etc/group"; then
      echo "$id"
      return 0
    fi
  done
  die "no free system id in $ROOT/etc"
}

append_line() {
  local file=$1 line=$2
  [[ -f $file ]] || return 0
  printf '%s\n' "$line" >>"$file"
}

ensure_group() {
  local group=$1 gid
  if [[ -n $(lookup_id group "$group") ]]; then
    info "group $group exists"
    return 0
  fi
  if [[ -n $ROOT ]]; then
    gid=$(free_system_id)
    append_line "$ROOT/etc/group" "$group:x:$gid:"
    append_line "$ROOT/etc/gshadow" "$group:!::"
  else
    groupadd --system "$group"
  fi
  info "created group $group"
  CHANGED=1
}

# Adds USER to the member list of GROUP in ROOT/etc/group (and gshadow), if not already there.
add_member_in_root() {
  local user=$1 group=$2 file
  for file in "$ROOT/etc/group" "$ROOT/etc/gshadow"; do
    [[ -f $file ]] || continue
    awk -F: -v OFS=: -v user="$user" -v group="$group" '
      $1 == group {
        n = split($NF, members, ",")
        for (i = 1; i <= n; i++) if (members[i] == user) { print; next }
        $NF = ($NF == "" ? user : $NF "," user)
      }
      { print }' "$file" >"$file.new"
    cat "$file.new" >"$file"
    rm -f -- "$file.new"
  done
}

is_member() {
  local user=$1 group=$2
  awk -F: -v user="$user" -v group="$group" '
    $1 == group { n = split($4, members, ","); for (i = 1; i <= n; i++) if (members[i] == user) found = 1 }
    END { exit !found }' "$ROOT/etc/group"
}

ensure_user() {
  local gid uid group
  if [[ -z $(lookup_id passwd "$NAME") ]]; then
    if [[ -n $ROOT ]]; then
      gid=$(lookup_id group "$NAME")
      if [[ -z $gid ]]; then
        gid=$(free_system_id)
        append_line "$ROOT/etc/group" "$NAME:x:$gid:"
        append_line "$ROOT/etc/gshadow" "$NAME:!::"
      fi
      uid=$gid
      [[ -z $(awk -F: -v id="$uid" '$3 == id' "$ROOT/etc/passwd") ]] || uid=$(free_system_id)
      append_line "$ROOT/etc/passwd" "$NAME:x:$uid:$gid:Trygghetskamera service:/var/lib/$NAME:/usr/sbin/nologin"
      append_line "$ROOT/etc/shadow" "$NAME:!*:::::::"
    else
      useradd --system --user-group --no-create-home --home-dir "/var/lib/$NAME" \
        --shell /usr/sbin/nologin --comment "Trygghetskamera service" "$NAME"
    fi
    info "created user $NAME"
    CHANGED=1
  else
    info "user $NAME exists"
  fi
  for group in "${DEVICE_GROUPS[@]}"; do
    if is_member "$NAME" "$group"; then continue; fi
    if [[ -n $ROOT ]]; then
      add_member_in_root "$NAME" "$group"
    else
      usermod --append --groups "$group" "$NAME"
    fi
    info "added $NAME to group $group"
    CHANGED=1
  done
}

remove_accounts() {
  if [[ -z $(lookup_id passwd "$NAME") && -z $(lookup_id group "$NAME") ]]; then
    info "user $NAME already gone"
    return 0
  fi
  if [[ -n $ROOT ]]; then
    local file
    for file in passwd shadow group gshadow; do
      [[ -f $ROOT/etc/$file ]] || continue
      # Drop the user's own entries and its name from every member list.
      awk -F: -v OFS=: -v user="$NAME" -v file="$file" '
        $1 == user { next }
        file == "group" || file == "gshadow" {
          n = split($NF, members, ","); kept = ""
          for (i = 1; i <= n; i++) if (members[i] != user) kept = (kept == "" ? members[i] : kept "," members[i])
          $NF = kept
        }
        { print }' "$ROOT/etc/$file" >"$ROOT/etc/$file.new"
      cat "$ROOT/etc/$file.new" >"$ROOT/etc/$file"
      rm -f -- "$ROOT/etc/$file.new"
    done
  else
    if id "$NAME" >/dev/null 2>&1; then userdel "$NAME"; fi
    if getent group "$NAME" >/dev/null; then groupdel "$NAME"; fi
  fi
  info "removed user and group $NAME (groups video and gpio stay)"
}

# --- Files -------------------------------------------------------------------------------------

# Sets mode and owner only when they differ, so a second run leaves even the ctime alone.
set_meta() {
  local path=$1 mode=$2 uid=$3 gid=$4 current
  current=$(stat -c '%a %u %g' -- "$path")
  if ((AS_ROOT)) && [[ $current != "$mode $uid $gid" ]]; then
    chown -- "$uid:$gid" "$path"
    chmod -- "$mode" "$path"
    info "set $path to $mode $uid:$gid"
    CHANGED=1
  elif ((AS_ROOT == 0)) && [[ ${current%% *} != "$mode" ]]; then
    chmod -- "$mode" "$path"
    CHANGED=1
  fi
}

ensure_dir() {
  local path=$1 mode=$2 uid=$3 gid=$4
  if [[ -L $path || (-e $path && ! -d $path) ]]; then
    rm -f -- "$path"
  fi
  if [[ ! -d $path ]]; then
    mkdir -p -- "$path"
    info "created $path"
    CHANGED=1
  fi
  set_meta "$path" "$mode" "$uid" "$gid"
}

# Copies a file (keeping its mtime) only when the content differs; root-owned.
install_file() {
  local src=$1 dst=$2 mode=$3
  if [[ -d $dst && ! -L $dst ]]; then rm -rf -- "$dst"; fi
  if [[ -L $dst ]] || ! cmp -s -- "$src" "$dst" 2>/dev/null; then
    rm -f -- "$dst"
    cp -p -- "$src" "$dst.new"
    mv -f -- "$dst.new" "$dst"
    CHANGED=1
  fi
  set_meta "$dst" "$mode" 0 0
}

# NUL-separated "sha256  ./path" lines for the regular files under DIR, sorted; one sha256sum
# process per few thousand files, so node_modules (5,000+ files) takes seconds, not minutes.
hash_list() {
  (cd -- "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum -z) | sort -z
}

# NUL-separated "./path" of the entries of type TYPE (find -type) under DIR, sorted.
path_list() {
  (cd -- "$1" && find . -mindepth 1 -type "$2" -print0) | sort -z
}

# Mirrors SRC into DST: same tree, root-owned, 0755 dirs and executables, 0644 other files.
# Unchanged files are left alone (content compared by hash); changed ones are unlinked before the
# copy, so a running service that has a native addon mapped never sees it rewritten in place;
# entries that SRC no longer has are removed.
sync_tree() {
  local src=$1 dst=$2 rel target count changed stale fixed list
  ensure_dir "$dst" 755 0 0

  # Entries whose type differs between the trees go first (a file that became a directory...).
  stale=$(
    {
      comm -z -13 <(path_list "$src" d) <(path_list "$dst" d)
      comm -z -13 <(path_list "$src" f) <(path_list "$dst" f)
      comm -z -13 <(path_list "$src" l) <(path_list "$dst" l)
    } | (cd -- "$dst" && xargs -0 -r rm -rfv --) | wc -l
  )

  (cd -- "$src" && find . -mindepth 1 -type d -print0) | (cd -- "$dst" && xargs -0 -r mkdir -p --)

  list=$WORK/changed
  comm -z -23 <(hash_list "$src") <(hash_list "$dst") | sed -z 's/^[0-9a-f]*  //' >"$list"
  changed=$(tr -cd '\0' <"$list" | wc -c)
  (cd -- "$dst" && xargs -0 -r rm -f -- <"$list")
  (cd -- "$src" && xargs -0 -r cp --preserve=mode,timestamps --parents -t "$dst" -- <"$list")

  while IFS= read -r -d '' rel; do
    target=$(readlink -- "$src/$rel")
    if [[ ! -L $dst/$rel || $(readlink -- "$dst/$rel") != "$target" ]]; then
      rm -rf -- "${dst:?}/$rel"
      ln -s -- "$target" "$dst/$rel"
      changed=$((changed + 1))
    fi
  done < <(path_list "$src" l)

  fixed=$(
    {
      find "$dst" -type d ! -perm 755 -exec chmod -v 755 {} +
      find "$dst" -type f -perm /u+x ! -perm 755 -exec chmod -v 755 {} +
      find "$dst" -type f ! -perm /u+x ! -perm 644 -exec chmod -v 644 {} +
      if ((AS_ROOT)); then find "$dst" \( ! -uid 0 -o ! -gid 0 \) -exec chown -hv 0:0 {} +; fi
    } | wc -l
  )

  count=$(path_list "$src" f | tr -cd '\0' | wc -c)
  info "$dst: $count files; $changed copied, $stale stale removed, $fixed modes or owners fixed"
  if ((changed + stale + fixed > 0)); then CHANGED=1; fi
}

remove_path() {
  local path=$1
  if [[ -e $path || -L $path ]]; then
    rm -rf -- "$path"
    info "removed $path"
  else
    info "$path already gone"
  fi
}

remove_old_logs_if_empty() {
  if [[ -d $OLD_LOGS && ! -L $OLD_LOGS ]] && rmdir -- "$OLD_LOGS" 2>/dev/null; then
    info "removed the unused $OLD_LOGS (the audit log is in $AUDIT)"
    CHANGED=1
  fi
}

# The technician's tool on PATH. A wrapper rather than a symlink to cli.js: it runs the same
# /usr/bin/node as the unit, and cli.js keeps the 0644 mode every file in $OPT has.
install_tool() {
  local wrapper=$WORK/$NAME-provision
  cat >"$wrapper" <<EOF
#!/bin/sh
# Installed by $NAME's scripts/install.sh: the technician's provisioning tool (docs/technician.md).
exec /usr/bin/node /opt/$NAME/dist/provisioning/cli.js "\$@"
EOF
  if [[ ! -d $BIN_DIR ]]; then
    mkdir -p -- "$BIN_DIR"
    info "created $BIN_DIR"
    CHANGED=1
  fi
  install_file "$wrapper" "$TOOL" 755
}

# --- Install -----------------------------------------------------------------------------------

install_service() {
  step "Checking the checkout in $FROM"
  local required
  for required in dist/device/main.js dist/provisioning/cli.js package.json package-lock.json "systemd/$NAME.service"; do
    [[ -f $FROM/$required ]] || die "$FROM/$required is missing (build first: npm ci && npm run build)"
  done
  if [[ -z $ROOT && ! -x /usr/bin/node ]]; then
    die "/usr/bin/node not found: install Node.js 22 first (docs/install.md)"
  fi

  # Production dependencies are prepared before anything on the system changes, so a network
  # failure leaves the old installation untouched.
  local staging=
  if ((DEPS)); then
    step "Installing production dependencies (npm ci --omit=dev)"
    command -v npm >/dev/null || die "npm not found (it comes with Node.js); or use --no-deps"
    staging=$WORK/staging
    mkdir -- "$staging"
    cp -p -- "$FROM/package.json" "$FROM/package-lock.json" "$staging/"
    (cd -- "$staging" && npm ci --omit=dev --no-audit --no-fund) || die "npm ci failed"
    # node-gyp leaves Makefiles and config.gypi that name the staging path, so every run would
    # differ; the service needs only the built build/Release/*.node.
    local gyp build
    while IFS= read -r -d '' gyp; do
      build=$(dirname -- "$gyp")/build
      [[ -d $build ]] || continue
      find "$build" -mindepth 1 ! -type d ! -path "$build/Release/*.node" -delete
      find "$build" -mindepth 1 -type d -empty -delete
    done < <(find "$staging/node_modules" -name binding.gyp -print0)
  else
    step "Skipping production dependencies (--no-deps)"
  fi

  if ((APT)) && [[ -z $ROOT ]]; then
    step "Installing system packages: ${APT_PACKAGES[*]}"
    command -v apt-get >/dev/null || die "apt-get not found; install ${APT_PACKAGES[*]} by hand and use --no-apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
  elif [[ -n $ROOT ]]; then
    step "Skipping system packages (${APT_PACKAGES[*]}): --root mode"
  else
    step "Skipping system packages (${APT_PACKAGES[*]}): --no-apt"
  fi

  step "Creating groups and user $NAME"
  if [[ -n $ROOT ]]; then
    [[ -f $ROOT/etc/passwd && -f $ROOT/etc/group ]] || die "$ROOT/etc/passwd and $ROOT/etc/group must exist"
  fi
  local group
  for group in "${DEVICE_GROUPS[@]}"; do ensure_group "$group"; done
  ensure_user
  local uid gid
  uid=$(lookup_id passwd "$NAME")
  gid=$(lookup_id group "$NAME")
  [[ -n $uid && -n $gid ]] || die "user $NAME has no entry in $ROOT/etc/passwd or group"

  step "Creating directories"
  ensure_dir "$ETC" 750 0 "$gid"
  ensure_dir "$STATE" 700 "$uid" "$gid"
  remove_old_logs_if_empty
  ensure_dir "$ROOT/opt" 755 0 0
  ensure_dir "$OPT" 755 0 0

  step "Installing the program into $OPT"
  sync_tree "$FROM/dist" "$OPT/dist"
  install_file "$FROM/package.json" "$OPT/package.json" 644
  install_file "$FROM/package-lock.json" "$OPT/package-lock.json" 644
  if [[ -f $FROM/docs/install.md ]]; then
    ensure_dir "$OPT/docs" 755 0 0
    install_file "$FROM/docs/install.md" "$OPT/docs/install.md" 644
  fi
  if ((DEPS)); then
    sync_tree "$staging/node_modules" "$OPT/node_modules"
  fi

  step "Installing the provisioning tool $TOOL"
  install_tool

  step "Installing the systemd unit $UNIT"
  ensure_dir "$UNIT_DIR" 755 0 0
  install_file "$FROM/systemd/$NAME.service" "$UNIT" 644

  if use_systemctl; then
    step "Enabling $NAME.service"
    systemctl daemon-reload
    systemctl enable "$NAME.service"
    if [[ ! -f $ETC/config.json ]]; then
      info "no $ETC/config.json yet: provision the device, then: systemctl start $NAME"
    elif ((CHANGED)) || ! systemctl is-active --quiet "$NAME.service"; then
      systemctl restart "$NAME.service"
      info "service (re)started"
    fi
  elif [[ -n $ROOT ]]; then
    step "Not enabling the service: --root mode"
  else
    step "Not enabling the service: systemd is not running here"
  fi

  if ((CHANGED)); then step "Done: installed or updated"; else step "Done: nothing to change"; fi
}

# --- Uninstall ---------------------------------------------------------------------------------

uninstall_service() {
  if use_systemctl; then
    step "Stopping and disabling $NAME.service"
    systemctl disable --now "$NAME.service" 2>/dev/null || info "service was not enabled"
  fi
  step "Removing the unit, program, provisioning tool and config"
  remove_path "$UNIT"
  if use_systemctl; then systemctl daemon-reload; fi
  remove_path "$TOOL"
  remove_path "$OPT"
  remove_path "$ETC"

  if ((PURGE)); then
    step "Purging state, audit log, user and group"
    remove_path "$STATE"
    remove_path "$OLD_LOGS"
    remove_accounts
  else
    step "Removing state except the audit log"
    if [[ -d $STATE ]]; then
      find "$STATE" -mindepth 1 -maxdepth 1 ! -name audit -exec rm -rf -- {} +
      info "kept $AUDIT (if any); user $NAME kept as its owner (--purge removes them)"
    fi
    remove_old_logs_if_empty
  fi
  step "Done: uninstalled"
}

if ((UNINSTALL)); then uninstall_service; else install_service; fi
