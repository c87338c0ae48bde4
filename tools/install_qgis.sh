#!/usr/bin/env bash
# `make setup`, system part (needs root): QGIS ≥ 3.40 LTR, GDAL and the Python pieces they come with, from apt.
# Does nothing when every package is installed and QGIS is recent enough, so re-running it is cheap.
#
# Debian 12 (bookworm): QGIS 3.40 LTR from bookworm-backports, built against bookworm's own GDAL 3.6, Python 3.11
#   and numpy 1.24. A plain `apt-get install qgis` there gives 3.22 (end of life), because backports has a lower
#   priority: hence the source below and `-t bookworm-backports`. An installed 3.22 is upgraded.
# Debian 13 (trixie) and later: the distribution's QGIS (3.40 on trixie), plus its CPU build of torch
#   (python3-torch): pip would fetch the multi-GB CUDA build from PyPI, and the CPU wheel of PyTorch's own index
#   is for CPython versions the distribution may not have.
# python3-pip: the plugin's dependency installer runs pip with QGIS's own Python (tests/plugin/test_installer.py).
set -euo pipefail

MIN_QGIS=34000   # Qgis.QGIS_VERSION_INT of 3.40
PACKAGES=(qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-numpy python3-scipy python3-venv python3-pip)
TARGET=()

. /etc/os-release
case "${VERSION_CODENAME:-}" in
  bookworm)
    TARGET=(-t bookworm-backports)
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "== adding Debian's bookworm-backports to apt's sources (QGIS 3.40 LTR lives there)"
      cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    ;;
esac

# Debian 13+: the distribution's CPU torch, where apt knows one (asked again after `apt-get update` below)
distribution_torch() {
  # (the output is captured first: `| grep -q` under pipefail fails at random when apt-cache gets SIGPIPE)
  local policy
  policy=$(apt-cache policy python3-torch 2>/dev/null || true)
  [ "${VERSION_CODENAME:-}" != bookworm ] && [[ $policy == *"Candidate: "[0-9]* ]]
}
distribution_torch && PACKAGES+=(python3-torch)

qgis_recent_enough() {
  /usr/bin/python3 - <<EOF 2>/dev/null
import sys
import osgeo.gdal  # noqa: F401
from qgis.core import Qgis
sys.exit(0 if Qgis.QGIS_VERSION_INT >= $MIN_QGIS else 1)
EOF
}

missing=()
for package in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ] && qgis_recent_enough; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "QGIS ≥ 3.40 or some of its packages are missing (${missing[*]:-qgis too old}); run \`make setup\` as root," \
       "or install them yourself: apt-get install ${TARGET[*]} ${PACKAGES[*]}" >&2
  exit 1
fi
echo "== installing QGIS ≥ 3.40 and GDAL from Debian (${PRETTY_NAME:-this system}; a few minutes)"
apt-get update -qq
if distribution_torch && [[ ! " ${PACKAGES[*]} " =~ " python3-torch " ]]; then PACKAGES+=(python3-torch); fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${TARGET[@]}" "${PACKAGES[@]}" >/dev/null
qgis_recent_enough || { echo "QGIS is still older than 3.40 after apt-get: check apt's sources" >&2; exit 1; }
