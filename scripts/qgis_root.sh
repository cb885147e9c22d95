#!/usr/bin/env bash
# QGIS 3.40 LTR for `make test`: a Debian 13 ("trixie") root built with debootstrap in a cache folder
# outside the checkout, set up by scripts/setup.sh as a Debian 13 machine would be (QGIS, PostgreSQL,
# its venv at /opt/canopy-venv, inside the root so it is cached with it), and reused while it is current.
#
#   scripts/qgis_root.sh ensure               build the root unless the cached one is current
#   scripts/qgis_root.sh test [PYTEST ARGS]   ensure; then, inside: scripts/setup.sh and the whole suite
#   scripts/qgis_root.sh run COMMAND...       run a command inside, in the checkout (mounted at /work/canopy)
#   scripts/qgis_root.sh shell                an interactive shell inside
#   scripts/qgis_root.sh status               where the root is, and whether it is current
#   scripts/qgis_root.sh clean                delete the cached root (never one with mounts inside)
#
# Settings (environment variables):
#   CANOPY_ROOT_CACHE         the cache folder (default /var/cache/canopy-explorer); the root is
#                             $CANOPY_ROOT_CACHE/debian-trixie, its last build log beside it (build-trixie.log)
#   CANOPY_ROOT_REBUILD=1     build a new root although the cached one is current
#   CANOPY_ROOT_MAX_AGE_DAYS  rebuild a root older than this, to pick up Debian's updates (default 30; 0: never)
#   CANOPY_ROOT_MIRROR        the Debian mirror (default http://deb.debian.org/debian, as apt uses here)
#   CANOPY_ROOT_SUITE         another Debian suite, for experiments (default trixie; sid has QGIS 3.44,
#                             bookworm checks scripts/setup.sh on a minimal Debian 12), in its own root
#                             ($CANOPY_ROOT_CACHE/debian-<suite>)
#
# A root is current when it was built completely (its stamp is written last, and a build happens in a
# temporary folder renamed into place when complete, so an interrupted build never looks current), from
# the same system-setup inputs (the hash of this script and scripts/setup.sh, which decide the Debian
# packages), and is not too old. The Python packages are not part of it: scripts/setup.sh runs inside
# before every test run and rebuilds only the root's venv when requirements*.txt, constraints.txt or the
# installer (plugin/core/environment) changed, which takes a minute where a new root takes several.
#
# Commands run in the root with a clean environment (env -i: PATH, HOME, LANG=C.UTF-8, TERM and the
# host's PIP_* variables) and with the host's /etc/pip.conf, the certificate bundle PIP_CERT names and
# /etc/resolv.conf copied in: that is how pip reaches the package index from this machine. They run in
# private mount and PID namespaces: /proc, /sys, /dev (with pts and a fresh shm), the checkout and the
# local folders pip is configured with (read-only) are mounted for the run only; when the run ends,
# however it ends, a trap ends the processes it left (by their id) and unmounts everything under the
# root (the kernel would drop the namespace's mounts too). Nothing is deleted while /proc/mounts shows
# a mount inside it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
CHECKOUT=$(cd "$HERE/.." && pwd)
SUITE=${CANOPY_ROOT_SUITE:-trixie}
CACHE=${CANOPY_ROOT_CACHE:-/var/cache/canopy-explorer}
MIRROR=${CANOPY_ROOT_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${CANOPY_ROOT_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
MAX_AGE_DAYS=${CANOPY_ROOT_MAX_AGE_DAYS:-30}
ROOT="$CACHE/debian-$SUITE"
STAMP=.canopy-root-sha256          # in the root: the hash of the setup inputs, written when the build is complete
INSIDE=/work/canopy                # where the checkout is mounted in the root
ROOT_VENV=/opt/canopy-venv         # the root's venv (scripts/setup.sh's VENV), inside the root's own filesystem
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
FREE_GB_NEEDED=6                   # a built root takes about 4 GB

log() { echo "qgis-root: $*" >&2; }
die() { log "$*"; exit 1; }

inputs_hash() {
  (
    cd "$CHECKOUT"
    echo "suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR venv=$ROOT_VENV"
    for file in scripts/setup.sh scripts/qgis_root.sh; do
      echo "== $file"
      cat "$file"
    done
  ) | sha256sum | cut -d' ' -f1
}

# Mount points at or below $1, deepest first (from /proc/self/mounts: this process's mount namespace).
mounts_under() {
  awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { print length($2) "\t" $2 }' /proc/self/mounts | sort -rn | cut -f2-
}

safe_remove() {
  local dir=$1
  [ -e "$dir" ] || return 0
  local found
  found=$(mounts_under "$dir")
  [ -z "$found" ] || die "not deleting $dir: something is mounted inside it:"$'\n'"$found"
  rm -rf --one-file-system "$dir"
}

# Why the cached root is not current (empty when it is).
stale_reason() {
  [ -d "$ROOT" ] || { echo "no root at $ROOT"; return; }
  [ -f "$ROOT/$STAMP" ] || { echo "$ROOT was not built completely"; return; }
  [ "$(cat "$ROOT/$STAMP")" = "$(inputs_hash)" ] || { echo "the setup inputs changed since $ROOT was built"; return; }
  if [ "$MAX_AGE_DAYS" -gt 0 ] 2>/dev/null; then
    local age_days=$(( ($(date +%s) - $(stat -c %Y "$ROOT/$STAMP")) / 86400 ))
    [ "$age_days" -lt "$MAX_AGE_DAYS" ] || { echo "$ROOT is $age_days days old (CANOPY_ROOT_MAX_AGE_DAYS=$MAX_AGE_DAYS)"; return; }
  fi
  [ "${CANOPY_ROOT_REBUILD:-0}" = 0 ] || { echo "CANOPY_ROOT_REBUILD is set"; return; }
}

lock() {
  mkdir -p "$CACHE"
  exec 9>>"$CACHE/lock"
  if ! flock -n 9; then
    log "waiting for another run to finish with the root ($CACHE/lock)"
    flock 9
  fi
}

# Local folders (absolute paths, file:// URLs) in pip's settings: mounted read-only at the same place when they exist.
pip_local_folders() {
  {
    printf '%s\n' "${PIP_FIND_LINKS:-}" "${PIP_INDEX_URL:-}" "${PIP_EXTRA_INDEX_URL:-}"
    [ -f /etc/pip.conf ] && sed -n 's/^[[:space:]]*\(find-links\|index-url\|extra-index-url\)[[:space:]]*=//p' /etc/pip.conf
  } | tr ' \t' '\n\n' | sed -n 's#^file://##; \#^/#p' | sort -u | while read -r folder; do
    [ -d "$folder" ] && echo "$folder"
  done
  return 0
}

# Certificate bundles pip is told to trust (PIP_CERT, cert = in /etc/pip.conf).
pip_certificates() {
  {
    echo "${PIP_CERT:-}"
    [ -f /etc/pip.conf ] && sed -n 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*//p' /etc/pip.conf
  } | sed '/^$/d' | sort -u | while read -r file; do
    [ -f "$file" ] && echo "$file"
  done
  return 0
}

# The host's network and pip settings, copied into the root before each run.
copy_host_settings() {
  local dir=$1 index=0 file
  rm -f "$dir/etc/resolv.conf"
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
  grep -qs '^127\.0\.0\.1[[:space:]].*localhost' "$dir/etc/hosts" || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >> "$dir/etc/hosts"
  if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$dir/etc/pip.conf"; else rm -f "$dir/etc/pip.conf"; fi
  mkdir -p "$dir/usr/local/share/ca-certificates"
  rm -f "$dir"/usr/local/share/ca-certificates/canopy-host-*.crt
  while read -r file; do
    mkdir -p "$dir$(dirname "$file")"
    rm -f "$dir$file"
    cp -L "$file" "$dir$file"
    # Also where the root's update-ca-certificates (run when ca-certificates is installed or updated) keeps it.
    index=$((index + 1))
    cp -L "$file" "$dir/usr/local/share/ca-certificates/canopy-host-$index.crt"
  done < <(pip_certificates)
}

# Run "$@" in root $1 (see the header); returns the command's exit status.
enter() {
  local dir=$1
  shift
  local found
  found=$(mounts_under "$dir")
  [ -z "$found" ] || die "$dir has mounts left by another run:"$'\n'"$found"
  copy_host_settings "$dir"
  find "$dir/tmp" -mindepth 1 -delete 2>/dev/null || true  # the last run's temporary files
  # Byte code of the root's Python goes to the root's own cache, not the checkout's __pycache__ folders,
  # where the host's pytest would find assertion-rewritten tests naming /work/canopy paths.
  local environment=("PATH=$ROOT_PATH" "HOME=/root" "LANG=C.UTF-8" "TERM=${TERM:-dumb}" "PYTHONPYCACHEPREFIX=/var/cache/canopy-pycache")
  local name
  for name in $(compgen -e); do
    case "$name" in PIP_*) environment+=("$name=${!name}") ;; esac
  done
  local status=0
  unshare --mount --pid --fork --propagation private -- bash "$SCRIPT" __inside "$dir" "${environment[@]}" -- "$@" || status=$?
  found=$(mounts_under "$dir")
  [ -z "$found" ] || log "warning: mounts left under $dir:"$'\n'"$found"
  return "$status"
}

# PID 1 of the run's PID namespace, in its own mount namespace: mount, run, end what is left, unmount.
inside() {
  local dir=$1
  shift
  local environment=()
  while [ "$1" != -- ]; do environment+=("$1"); shift; done
  shift
  [ "$$" = 1 ] || die "__inside must run as PID 1 of its own PID namespace"

  cleanup() {
    local entry pid key state signal left tries target
    trap - EXIT INT TERM
    # Every other process of this namespace was started by this run: end them by their id (pure bash
    # here, so that the listing does not see processes of its own).
    for ((tries = 0; tries < 20; tries++)); do
      signal=TERM
      [ "$tries" -lt 10 ] || signal=KILL
      left=0
      for entry in "$dir"/proc/[0-9]*; do
        pid=${entry##*/}
        [ "$pid" != 1 ] && [ -r "$entry/status" ] || continue
        state=""
        while read -r key state _; do [ "$key" = State: ] && break; done < "$entry/status" 2>/dev/null || true
        [ "$state" != Z ] || continue
        kill -s "$signal" "$pid" 2>/dev/null && left=1
      done
      [ "$left" = 1 ] || break
      sleep 0.5
    done
    while read -r target; do
      [ -n "$target" ] || continue
      umount "$target" 2>/dev/null || umount -l "$target" || echo "qgis-root: cannot unmount $target" >&2
    done < <(mounts_under "$dir")
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  mount -t proc proc "$dir/proc"
  mount -t sysfs -o ro sysfs "$dir/sys"
  mount --bind /dev "$dir/dev"
  mount --bind /dev/pts "$dir/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$dir/dev/shm"
  mkdir -p "$dir$INSIDE"
  mount --bind "$CHECKOUT" "$dir$INSIDE"
  local folder
  while read -r folder; do
    mkdir -p "$dir$folder"
    mount --bind "$folder" "$dir$folder"
    mount -o remount,bind,ro "$dir$folder"
  done < <(pip_local_folders)

  local status=0
  chroot "$dir" /usr/bin/env -i "${environment[@]}" /bin/bash -c 'cd "$0" && exec "$@"' "$INSIDE" "$@" || status=$?
  exit "$status"
}

build() {
  command -v debootstrap > /dev/null || die "debootstrap is not installed: run \`make setup\` (scripts/setup.sh installs it)"
  mkdir -p "$CACHE"
  local leftover
  for leftover in "$ROOT".build.* "$ROOT".old.*; do
    [ -e "$leftover" ] || continue
    log "removing $leftover (left by an interrupted run)"
    safe_remove "$leftover"
  done
  local free_kb
  free_kb=$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')
  [ "$free_kb" -ge $((FREE_GB_NEEDED * 1024 * 1024)) ] \
    || die "$CACHE has $((free_kb / 1024 / 1024)) GB free; building the Debian $SUITE root needs about $FREE_GB_NEEDED GB"
  local started=$SECONDS build_log="$CACHE/build-$SUITE.log"
  local new
  new=$(mktemp -d "$ROOT.build.XXXXXX")
  chmod 755 "$new"
  # shellcheck disable=SC2064
  trap "log 'build failed: see $build_log'; safe_remove '$new'" EXIT
  log "building the Debian $SUITE root in $new (debootstrap, then scripts/setup.sh; log: $build_log)"
  : > "$build_log"
  debootstrap --variant=minbase "$SUITE" "$new" "$MIRROR" >> "$build_log" 2>&1 \
    || { tail -n 30 "$build_log" >&2; die "debootstrap failed"; }
  log "debootstrap done in $((SECONDS - started)) s"

  rm -f "$new/etc/apt/sources.list"
  local keyring="" suites="$SUITE $SUITE-updates"
  [ -f "$new/usr/share/keyrings/debian-archive-keyring.gpg" ] && keyring="Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  case "$SUITE" in sid|unstable) suites=$SUITE ;; esac  # no updates or security suites
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n%s\n' "$MIRROR" "$suites" "$keyring"
    [ "$suites" = "$SUITE" ] \
      || printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n%s\n' "$SECURITY_MIRROR" "$SUITE" "$keyring"
  } > "$new/etc/apt/sources.list.d/debian.sources"
  echo 'Acquire::Languages "none";' > "$new/etc/apt/apt.conf.d/90canopy-root"
  # No services start inside the root (PostgreSQL's package would start its cluster), and no cluster is
  # created: the tests start their own servers.
  printf '#!/bin/sh\nexit 101\n' > "$new/usr/sbin/policy-rc.d"
  chmod 755 "$new/usr/sbin/policy-rc.d"
  mkdir -p "$new/etc/postgresql-common/createcluster.d"
  echo "create_main_cluster = false" > "$new/etc/postgresql-common/createcluster.d/canopy-root.conf"
  echo "debian-$SUITE" > "$new/etc/debian_chroot"

  local step=$SECONDS
  enter "$new" bash -c "apt-get update -qq && VENV=$ROOT_VENV bash scripts/setup.sh && apt-get clean" >> "$build_log" 2>&1 \
    || { tail -n 40 "$build_log" >&2; die "scripts/setup.sh failed inside the root"; }
  log "packages and $ROOT_VENV installed in $((SECONDS - step)) s"
  inputs_hash > "$new/$STAMP"

  local old=""
  if [ -e "$ROOT" ]; then
    old="$ROOT.old.$$"
    [ -z "$(mounts_under "$ROOT")" ] || die "$ROOT has mounts inside: not replacing it"
    mv "$ROOT" "$old"
  fi
  mv "$new" "$ROOT"
  trap - EXIT
  [ -z "$old" ] || safe_remove "$old"
  log "built $ROOT in $((SECONDS - started)) s ($(du -sh --one-file-system "$ROOT" | cut -f1))"
}

ensure() {
  local reason
  reason=$(stale_reason)
  if [ -n "$reason" ]; then
    log "$reason: building it"
    build
  else
    log "reusing $ROOT (built $(date -r "$ROOT/$STAMP" '+%Y-%m-%d %H:%M'); CANOPY_ROOT_REBUILD=1 builds it again)"
  fi
}

if [ "$(id -u)" != 0 ] && [ "${1:-}" != status ] && [ "${1:-}" != help ]; then
  # debootstrap, chroot and mounts need root: again through sudo, with the settings this script reads.
  command -v sudo > /dev/null || die "must run as root (debootstrap, chroot and mounts need it)"
  settings=("SUDO_CHECKOUT_OWNER=$(id -u):$(id -g)" "TERM=${TERM:-dumb}")
  for name in $(compgen -e); do
    case "$name" in PIP_*|CANOPY_ROOT_*) settings+=("$name=${!name}") ;; esac
  done
  exec sudo env "${settings[@]}" bash "$SCRIPT" "$@"
fi
# After a run through sudo, what the suite wrote into the checkout (build/, caches) goes back to its owner.
give_back() {
  [ -n "${SUDO_CHECKOUT_OWNER:-}" ] && [ "$(stat -c %u "$CHECKOUT")" = "${SUDO_CHECKOUT_OWNER%%:*}" ] || return 0
  find "$CHECKOUT" -xdev -uid 0 -exec chown -h "$SUDO_CHECKOUT_OWNER" {} + 2>/dev/null || true
}
command="${1:-}"
shift || true
case "$command" in
  __inside) inside "$@" ;;
  ensure) lock; ensure ;;
  test)
    lock
    ensure
    arguments=""
    [ "$#" = 0 ] || arguments=$(printf ' %q' "$@")
    status=0
    enter "$ROOT" bash -c "VENV=$ROOT_VENV bash scripts/setup.sh && QT_QPA_PLATFORM=offscreen $ROOT_VENV/bin/python scripts/test_report.py run qgis-root --$arguments" || status=$?
    give_back
    exit "$status"
    ;;
  run)
    [ "$#" -gt 0 ] || die "usage: $0 run COMMAND..."
    lock; ensure; status=0; enter "$ROOT" "$@" || status=$?; give_back; exit "$status" ;;
  shell) lock; ensure; status=0; enter "$ROOT" bash -i || status=$?; give_back; exit "$status" ;;
  status)
    reason=$(stale_reason)
    echo "root: $ROOT"
    if [ -z "$reason" ]; then echo "current (built $(date -r "$ROOT/$STAMP" '+%Y-%m-%d %H:%M'))"; else echo "not current: $reason"; fi
    ;;
  clean)
    lock
    for dir in "$ROOT" "$ROOT".build.* "$ROOT".old.*; do
      [ -e "$dir" ] && { log "deleting $dir"; safe_remove "$dir"; }
    done
    ;;
  *) sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d; s/^# \{0,1\}//'; [ -z "$command" ] || [ "$command" = help ] || exit 2 ;;
esac
