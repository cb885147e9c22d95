#!/usr/bin/env bash
# Installs everything Canopy Explorer needs on Debian 12: system packages, then .venv.
# Idempotent: re-running installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages that link GDAL, HDF5 or PROJ come from Debian so they load the same
# libraries as QGIS in one process (a pip h5py or rasterio wheel brings its own).
APT_PACKAGES=(
  qgis python3-qgis qgis-providers
  postgresql-15 postgresql-15-postgis-3 postgis
  xvfb zip python3-venv python3-pip
  python3-numpy python3-pandas python3-h5py python3-rasterio python3-pyproj python3-psycopg python3-yaml python3-xarray python3-netcdf4
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

absent=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    absent+=("$package")
  fi
done
if [ "${#absent[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${absent[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${absent[@]}"
else
  echo "setup: Debian packages already installed"
fi

# The venv must sit on Debian's Python so it sees PyQGIS (python3-qgis). Its packages are chosen by the
# plugin's own installer (plugin/core/environment), with the rule users get in QGIS: every package
# Debian's Python has keeps its version, and shapely matches the GEOS QGIS loads. When the inputs
# change, the venv is built again from nothing, so no package of an older rule stays behind.
installer_inputs=(requirements-dev.txt constraints.txt plugin/core/environment/*.py)
wanted=$(cat "${installer_inputs[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import sys; sys.exit(sys.base_prefix != '/usr')" 2>/dev/null \
   || [ "$(cat .venv/.requirements-sha256 2>/dev/null)" != "$wanted" ]; then
  echo "setup: creating .venv on /usr/bin/python3"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# Make the checkout importable as the package QGIS would load (`canopy_explorer`), for the
# tests, the demo and the command-line tools, the way a development install would.
site_packages=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
ln -sfn "$(pwd)" "$site_packages/canopy_explorer"
# Debian's pyproj looks for PROJ data under sys.prefix, which in a venv is .venv.
mkdir -p .venv/share && ln -sfn /usr/share/proj .venv/share/proj
qgis_geos=$(/usr/bin/python3 -c "from qgis.core import Qgis; print(Qgis.geosVersion())")
if [ "$(cat .venv/.requirements-sha256 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python packages into .venv (QGIS's GEOS is $qgis_geos)"
  .venv/bin/python -m canopy_explorer.plugin.core.environment install --qgis-geos "$qgis_geos" --into-environment \
    --requirements requirements-dev.txt --constraints constraints.txt > .venv/install.log 2>&1 \
    || { tail -n 40 .venv/install.log; echo "setup: installing Python packages failed (whole log: .venv/install.log)"; exit 1; }
  echo "$wanted" > .venv/.requirements-sha256
else
  echo "setup: Python packages already installed"
fi
.venv/bin/python - <<'PY'
import h5py, rasterio
for module in (h5py, rasterio):
    assert module.__file__.startswith("/usr/lib/python3/"), f"{module.__name__} must come from Debian, not pip: {module.__file__}"
PY
.venv/bin/python -m canopy_explorer.plugin.core.environment check --qgis-geos "$qgis_geos" > /dev/null \
  || { .venv/bin/python -m canopy_explorer.plugin.core.environment check --qgis-geos "$qgis_geos"; exit 1; }
.venv/bin/python -c "import canopy_explorer, qgis.core, pystac_client, pytest_qgis; print('setup: ok, QGIS', qgis.core.Qgis.QGIS_VERSION)"
