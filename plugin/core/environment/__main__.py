"""The self-check and the installer from a terminal, with the same rules as the plugin's dialog.

    python3 -m canopy_explorer.plugin.core.environment check --qgis-geos 3.11.1
    python3 -m canopy_explorer.plugin.core.environment install --qgis-geos 3.11.1 --target FOLDER
    .venv/bin/python -m canopy_explorer.plugin.core.environment install --qgis-geos 3.11.1 --into-environment \\
        --requirements requirements-dev.txt --constraints constraints.txt      (make setup)

``--target`` is the plugin's packages folder (the dialog shows the exact command for this QGIS);
``--into-environment`` installs into the running Python's own environment (a virtualenv).
"""

import argparse
# B404: runs fixed programs with argument lists, never a shell
import subprocess  # nosec B404
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import CanopyExplorerError
from .installer import install, plan_install
from .self_check import check_environment


def _lines(paths: Sequence[str]) -> List[str]:
    found = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                found.append(line)
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canopy_explorer.plugin.core.environment",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "install"))
    parser.add_argument("--qgis-geos", default="", help="QGIS's GEOS version (Qgis.geosVersion()); shapely must match it")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", type=Path, help="the plugin's packages folder (put first on sys.path by the plugin)")
    where.add_argument("--into-environment", action="store_true", help="install into this Python's own environment")
    parser.add_argument("--requirements", action="append", default=[], help="more requirements (a requirements file)")
    parser.add_argument("--constraints", action="append", default=[], help="more pins (a constraints file)")
    parser.add_argument("--allow-source", action="append", default=[], help="a distribution that may be built from an sdist")
    args = parser.parse_args(argv)
    if args.command == "install" and not (args.target or args.into_environment):
        parser.error("install needs --target FOLDER or --into-environment")

    if args.target:
        sys.path.insert(0, str(args.target))  # the environment as the plugin will see it
    report = check_environment(args.qgis_geos, packages_folder=str(args.target or ""))
    for status in report.statuses:
        state = status.version if status.installed else f"cannot import ({status.error})"
        print(f"{status.requirement.name:14} {state}" + (f"  [{status.location}]" if status.location else ""))
    print(report.message())
    if args.command == "check":
        return 0 if report.ok else 1

    extra = _lines(args.requirements)
    plan = plan_install(report, extra=extra)
    if plan.empty:
        print("Nothing to install.")
        return 0 if report.ok else 1
    print(plan.describe())
    try:
        result = install(plan, None if args.into_environment else args.target, python=sys.executable,
                         extra_constraints=_lines(args.constraints), allow_source=args.allow_source)
    except CanopyExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    # A fresh interpreter sees the new packages (and no copy this one imported before): check again there.
    again = [sys.executable, "-m", __package__, "check", "--qgis-geos", args.qgis_geos]
    # B603: this Python, this module
    return subprocess.run(again + (["--target", str(args.target)] if args.target else [])).returncode  # nosec B603


if __name__ == "__main__":
    sys.exit(main())
