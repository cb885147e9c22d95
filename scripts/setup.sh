#!/usr/bin/env bash
# Installs everything Canopy Explorer needs on Debian 12 or 13: system packages, then the virtualenv.
# Idempotent: re-running installs nothing that is already there.
#   VENV=/opt/canopy-venv scripts/setup.sh     (default: .venv in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_update() {
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
}

# The distribution's own PostgreSQL major version (15 on Debian 12, 17 on Debian 13): the one its
# `postgresql` package depends on; from /etc/os-release when the package lists are empty (a fresh system).
postgresql_major() {
  apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1
}
PG_MAJOR="${PG_MAJOR:-$(postgresql_major)}"
if [ -z "$PG_MAJOR" ]; then
  # shellcheck disable=SC1091
  case "$(. /etc/os-release && echo "${ID:-}:${VERSION_ID:-}")" in
    debian:12) PG_MAJOR=15 ;;
    debian:13) PG_MAJOR=17 ;;
    *) apt_update; PG_MAJOR=$(postgresql_major) ;;
  esac
fi
if [ -z "$PG_MAJOR" ]; then
  echo "setup: cannot tell which PostgreSQL this distribution packages (apt-cache depends postgresql); set PG_MAJOR" >&2
  exit 1
fi

# Packages that link GDAL, HDF5 or PROJ come from Debian so they load the same
# libraries as QGIS in one process (a pip h5py or rasterio wheel brings its own).
# The tools a minimal system (debootstrap --variant=minbase, a container image) lacks are listed too:
# make, certificates, xauth and a font for Xvfb and the desktop test, debootstrap for make test's
# QGIS 3.40 root (scripts/qgis_root.sh).
APT_PACKAGES=(
  qgis python3-qgis qgis-providers
  "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-postgis-3" postgis
  xvfb xauth fonts-dejavu-core zip make ca-certificates debootstrap python3-venv python3-pip
  python3-numpy python3-pandas python3-h5py python3-rasterio python3-pyproj python3-psycopg python3-yaml python3-xarray python3-netcdf4
)

absent=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    absent+=("$package")
  fi
done
if [ "${#absent[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${absent[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${absent[@]}"
else
  echo "setup: Debian packages already installed (PostgreSQL $PG_MAJOR)"
fi

# The venv must sit on Debian's Python so it sees PyQGIS (python3-qgis). Its packages are chosen by the
# plugin's own installer (plugin/core/environment), with the rule users get in QGIS: every package
# Debian's Python has keeps its version, and shapely matches the GEOS QGIS loads. When the inputs
# change, the venv is built again from nothing, so no package of an older rule stays behind.
installer_inputs=(requirements-dev.txt constraints.txt plugin/core/environment/*.py)
wanted=$(cat "${installer_inputs[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sys; sys.exit(sys.base_prefix != '/usr')" 2>/dev/null \
   || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: creating $VENV on /usr/bin/python3"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# Make the checkout importable as the package QGIS would load (`canopy_explorer`), for the
# tests, the demo and the command-line tools, the way a development install would.
site_packages=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
ln -sfn "$(pwd)" "$site_packages/canopy_explorer"
# Debian's pyproj looks for PROJ data under sys.prefix, which in a venv is the venv.
mkdir -p "$VENV/share" && ln -sfn /usr/share/proj "$VENV/share/proj"
qgis_geos=$(/usr/bin/python3 -c "from qgis.core import Qgis; print(Qgis.geosVersion())")
if [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python packages into $VENV (QGIS's GEOS is $qgis_geos)"
  "$VENV/bin/python" -m canopy_explorer.plugin.core.environment install --qgis-geos "$qgis_geos" --into-environment \
    --requirements requirements-dev.txt --constraints constraints.txt > "$VENV/install.log" 2>&1 \
    || { tail -n 40 "$VENV/install.log"; echo "setup: installing Python packages failed (whole log: $VENV/install.log)"; exit 1; }
  echo "$wanted" > "$VENV/.requirements-sha256"
else
  echo "setup: Python packages already installed"
fi
"$VENV/bin/python" - <<'PY'
import h5py, rasterio
for module in (h5py, rasterio):
    assert module.__file__.startswith("/usr/lib/python3/"), f"{module.__name__} must come from Debian, not pip: {module.__file__}"
PY
"$VENV/bin/python" -m canopy_explorer.plugin.core.environment check --qgis-geos "$qgis_geos" > /dev/null \
  || { "$VENV/bin/python" -m canopy_explorer.plugin.core.environment check --qgis-geos "$qgis_geos"; exit 1; }
"$VENV/bin/python" -c "import canopy_explorer, qgis.core, pystac_client, pytest_qgis; print('setup: ok, QGIS', qgis.core.Qgis.QGIS_VERSION, 'in $VENV')"
