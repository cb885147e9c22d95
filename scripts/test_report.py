#!/usr/bin/env python3
"""Run the test suite and record how it went; then one summary of `make test`'s runs.

    $VENV/bin/python scripts/test_report.py run NAME [-- PYTEST ARGS...]
    python3 scripts/test_report.py summary NAME=STATUS [NAME=STATUS ...]

``run`` runs pytest with this Python (the environment's venv) and writes, under build/test-results/,
NAME.xml (pytest's JUnit report) and NAME.json (the QGIS and system versions, the exit status and the
time taken); its own exit status is pytest's. ``summary`` reads them back, one line per run, for
example ``QGIS 3.22.16 (Debian GNU/Linux 12 (bookworm)): 574 passed, 2 skipped in 9 min 40 s``, and
exits non-zero if any run's STATUS (its exit status as the Makefile saw it) is not 0. A run whose
report is missing says why: it crashed (a signal), or stopped before pytest ran (setup failed).
"""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "build" / "test-results"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown system"


def _qgis_version() -> str:
    answer = subprocess.run([sys.executable, "-c", "from qgis.core import Qgis; print(Qgis.QGIS_VERSION)"],
                            capture_output=True, text=True, timeout=120)
    return answer.stdout.strip().splitlines()[-1] if answer.returncode == 0 and answer.stdout.strip() else "?"


def _status_text(status: int) -> str:
    if status < 0 or status > 128:
        number = -status if status < 0 else status - 128
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit status {status}"


def run(name: str, arguments) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    report, xml = RESULTS / f"{name}.json", RESULTS / f"{name}.xml"
    for stale in (report, xml):
        stale.unlink(missing_ok=True)
    record = {"name": name, "qgis": _qgis_version(), "system": _os_name(), "python": sys.version.split()[0],
              "venv": sys.prefix}
    print(f"test-report: {name}: QGIS {record['qgis']} on {record['system']}, Python {record['python']} ({sys.prefix})",
          flush=True)
    started = time.monotonic()
    status = subprocess.run([sys.executable, "-m", "pytest", f"--junitxml={xml}", *arguments], cwd=ROOT).returncode
    record.update(status=status, seconds=round(time.monotonic() - started, 1))
    report.write_text(json.dumps(record, indent=1) + "\n")
    return status if status >= 0 else 128 - status


def _counts(xml: Path) -> dict:
    suites = ElementTree.parse(xml).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites.iter("testsuite"))
    total = {key: sum(int(suite.get(key, 0)) for suite in suites) for key in ("tests", "failures", "errors", "skipped")}
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def summary(runs) -> int:
    rows, failed = [], False
    for item in runs:
        name, _, status = item.partition("=")
        status = int(status or 0)
        failed = failed or status != 0
        report, xml = RESULTS / f"{name}.json", RESULTS / f"{name}.xml"
        record = json.loads(report.read_text()) if report.exists() else {}
        short = f"QGIS {record['qgis'].split('-')[0]}" if record else name
        where = f" ({record['system']})" if record else ""
        if record and xml.exists():
            counts = _counts(xml)
            parts = [f"{counts['passed']} passed"] + [f"{counts[key]} {label}" for key, label in
                                                      (("failures", "failed"), ("errors", "errors"), ("skipped", "skipped"))
                                                      if counts[key]]
            outcome = ", ".join(parts)
            if status != 0 and not (counts["failures"] or counts["errors"]):
                outcome += f" ({_status_text(status)})"
            timing = f" in {_duration(record['seconds'])}"
        elif record:
            outcome, timing = f"no report, pytest {_status_text(record['status'])}", f" after {_duration(record['seconds'])}"
        else:
            outcome, timing = f"did not run ({_status_text(status)} before the suite started, see above)", ""
        rows.append((status, short, where, outcome, timing))
    print("\n== make test: summary ==")
    for status, short, where, outcome, timing in rows:
        print(f"{'ok    ' if status == 0 else 'FAILED'} {short}{where}: {outcome}{timing}")
    print("; ".join(f"{short}: {outcome}" for _, short, _, outcome, _ in rows))
    return 1 if failed else 0


def main(argv) -> int:
    if len(argv) >= 2 and argv[0] == "run":
        arguments = argv[2:]
        if arguments[:1] == ["--"]:
            arguments = arguments[1:]
        return run(argv[1], arguments)
    if len(argv) >= 2 and argv[0] == "summary":
        return summary(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.exit(main(sys.argv[1:]))
