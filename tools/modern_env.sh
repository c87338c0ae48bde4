#!/usr/bin/env bash
# The second test environment of CI (`make test-modern`): Debian 13 (trixie) with its QGIS 3.40, Python 3.13,
# numpy 2, GDAL 3.10 and Debian's CPU torch, built by debootstrap into a folder and entered with chroot. The core
# and plugin tests run there with `make test`, so breakage on Python ≥ 3.12 / numpy 2 (what Windows, macOS,
# Ubuntu 24.04 and QGIS 4 users have) shows up in CI and not at users.
#
#   tools/modern_env.sh test          build or reuse the chroot, then `make test` inside it
#   tools/modern_env.sh build         only build (or check) the chroot
#   tools/modern_env.sh run 'CMD'     run a shell command inside, in the repository ($VENV: the venv there)
#
# Where it lives: /var/cache/sure-fusion/<release> (SURE_MODERN_ROOT overrides the folder, SURE_MODERN_SUITE the
# release). Outside the repository on purpose: CI runs in a fresh clone each time, and each worktree of this
# machine would otherwise build its own 3 GB chroot (about 3 minutes here, more on a slow mirror). It is a cache
# in the FHS sense: the script rebuilds it whenever it is missing, incomplete (no stamp, written last) or built by
# another recipe. Its venv (/opt/venvs/<hash> inside) is keyed by the requirement files, so branches with
# different requirements do not fight over one venv.
#
# Mounts (proc, sys, dev, the repository, ../shared) are made in a private mount namespace (unshare): they vanish
# when the command ends, even if it is killed, so nothing stays mounted and `rm -rf` of the chroot is safe.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# another Debian release (e.g. bookworm: checks that `make setup` installs QGIS 3.40 on a fresh Debian 12)
SUITE=${SURE_MODERN_SUITE:-trixie}
ROOTFS=${SURE_MODERN_ROOT:-/var/cache/sure-fusion/$SUITE}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# a change to this line (or to tools/install_qgis.sh's packages, applied by `make setup` inside) rebuilds or updates
RECIPE="sure-fusion rootfs 1: debootstrap minbase $SUITE + ca-certificates make + tools/install_qgis.sh"
STAMP=etc/sure-fusion-rootfs
VERSIONS='import sys, numpy, torch, osgeo, qgis.core as q
print("Python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__,
      "GDAL", osgeo.__version__, "QGIS", q.Qgis.QGIS_VERSION)'

log() { echo "== [modern] $*"; }

# Runs $2 (a bash command) as root inside the folder $1, with the mounts above, in /work/repo.
in_chroot() {
  local root=$1 command=$2 shared
  shared=$(cd "$REPO/.." && pwd)/shared
  mkdir -p "$root/work/repo" "$root/work/shared"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  unshare --mount --propagation private -- bash -euc '
    root=$1 repo=$2 shared=$3 command=$4
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount --bind "$repo" "$root/work/repo"
    if [ -d "$shared" ]; then mount --bind -o ro "$shared" "$root/work/shared"; fi
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=60 \
      OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" PYTEST_ADDOPTS="-p no:cacheprovider ${PYTEST_ADDOPTS:-}" \
      bash -euc "cd /work/repo && $command"
  ' _ "$root" "$REPO" "$shared" "$command"
}

rootfs_complete() {
  [ -f "$ROOTFS/$STAMP" ] && [ "$(cat "$ROOTFS/$STAMP")" = "$RECIPE" ]
}

build_rootfs() {
  local partial="$ROOTFS.partial" start=$SECONDS
  command -v debootstrap >/dev/null || {
    log "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  rm -rf --one-file-system "$partial"
  log "debootstrap $SUITE into $partial (a few minutes)"
  debootstrap --variant=minbase --include=ca-certificates,make "$SUITE" "$partial" "$MIRROR" >"$partial.log" 2>&1 ||
    { tail -20 "$partial.log"; exit 1; }
  cat > "$partial/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -f "$partial/etc/apt/sources.list"
  echo 'APT::Install-Recommends "false";' > "$partial/etc/apt/apt.conf.d/90-no-recommends"
  # pip inside must trust what the host trusts (this machine adds its own CA for outgoing HTTPS)
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$partial/usr/local/share/ca-certificates/"
  fi
  log "QGIS, GDAL and torch from $SUITE (tools/install_qgis.sh, several minutes)"
  in_chroot "$partial" "update-ca-certificates >/dev/null && bash tools/install_qgis.sh && apt-get clean"
  echo "$RECIPE" > "$partial/$STAMP"
  rm -rf --one-file-system "$ROOTFS"
  mv "$partial" "$ROOTFS"
  rm -f "$partial.log"
  log "chroot built in $((SECONDS - start)) s: $ROOTFS"
}

venv_path() {
  local key
  key=$(cd "$REPO" && cat requirements.txt requirements-dev.txt constraints.txt tools/venv_constraints.py |
        sha256sum | cut -c1-12)
  echo "/opt/venvs/$key"
}

main() {
  local action=${1:-test}
  [ "$(id -u)" -eq 0 ] || { echo "tools/modern_env.sh needs root (debootstrap, mount, chroot)" >&2; exit 1; }
  mkdir -p "$(dirname "$ROOTFS")"
  exec 9>"$ROOTFS.lock"
  flock -x 9   # one builder at a time; users of a complete chroot share the lock below
  if rootfs_complete; then log "reusing the complete chroot $ROOTFS"; else build_rootfs; fi
  local venv
  venv=$(venv_path)
  in_chroot "$ROOTFS" "make setup VENV=$venv"
  flock -s 9
  case "$action" in
    build) in_chroot "$ROOTFS" "$venv/bin/python -c '$VERSIONS'" ;;
    test) in_chroot "$ROOTFS" "make test VENV=$venv" ;;
    run) in_chroot "$ROOTFS" "VENV=$venv; ${2:?run needs a command}" ;;
    *) echo "usage: $0 test|build|run 'command'" >&2; exit 2 ;;
  esac
}

main "$@"
