#!/usr/bin/env python3
"""``make bench``: every benchmark script in turn, each writing its section of docs/BENCHMARKS.md,
then a section with the time each took, so the 30-minute budget is checked on every run.

    .venv/bin/python tests/benchmarks/run_all.py [--only query_scaling grid_change ...]

The synthetic databases and the baselines' virtualenvs are built on the first run into
build/bench and reused later; the section says whether this run built them (a cold run).
A failing script stops the run with its exit status; the sections already written stay.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from benchmarks_md import machine_line, write_section  # noqa: E402

WORKDIR = "build/bench"
MARKDOWN = "docs/BENCHMARKS.md"
BUDGET_MIN = 30.0
BENCHMARKS = {
    "query_scaling": ["bench_query_scaling.py", "--segments", "5000000", "--workdir", WORKDIR, "--out", "docs"],
    "latency": ["bench_latency.py", "--segments", "2000000", "--latencies", "0", "50", "150", "--boxes", "4", "--workdir", WORKDIR,
                "--out", "docs"],
    "grid_change": ["bench_grid_change.py", "--workdir", WORKDIR, "--out", "docs", "--rounds", "2"],
    "layer_loading": ["bench_layer_loading.py", "--rows", "500000", "1000000", "--out", MARKDOWN],
    "ndvi_composite": ["bench_ndvi_composite.py", "--workdir", WORKDIR, "--out", "docs"],
    "natural_breaks": ["bench_natural_breaks.py", "--out", "docs"],
    "distributed_ingest": ["bench_distributed_ingest.py", "--granules", "40", "--workdir", WORKDIR, "--out", MARKDOWN],
    "zonal_stats": ["bench_zonal_stats.py", "--size", "4000", "--districts", "300", "--rounds", "5", "--workdir", WORKDIR,
                    "--markdown", MARKDOWN],
}
MARK_START, MARK_END = "<!-- bench:run-times:start -->", "<!-- bench:run-times:end -->"


def cached_inputs(workdir: Path) -> int:
    """How many databases and virtualenvs an earlier run left in ``workdir`` (0: this run is cold)."""
    return sum(1 for p in workdir.iterdir() if p.is_dir()) if workdir.is_dir() else 0


def section(minutes, cold: bool) -> str:
    total = sum(minutes.values())
    rows = "\n".join(f"| `{BENCHMARKS[name][0]}` | {value:.1f} |" for name, value in minutes.items())
    verdict = "within" if total <= BUDGET_MIN else "over"
    return "\n".join([
        MARK_START, "## `make bench` run times", "",
        f"The last `make bench` ({time.strftime('%Y-%m-%d %H:%M')}, "
        + ("a cold run: the databases and the baselines' virtualenvs were built by this run" if cold
           else "the databases and virtualenvs of an earlier run reused from build/bench")
        + f") took {total:.1f} min, {verdict} the {BUDGET_MIN:.0f}-minute budget. Machine: {machine_line()}.", "",
        "| script | minutes |", "|---|---:|", rows, f"| **total** | **{total:.1f}** |", MARK_END,
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark, as make bench does.")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run these benchmarks only (no run-times section)")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    cold = cached_inputs(REPO / WORKDIR) == 0
    minutes = {}
    for name in names:
        script, *options = BENCHMARKS[name]
        print(f"=== {name}: {script} {' '.join(options)}", flush=True)
        started = time.monotonic()
        status = subprocess.run([sys.executable, str(HERE / script), *options], cwd=REPO).returncode
        minutes[name] = (time.monotonic() - started) / 60
        print(f"=== {name}: {minutes[name]:.1f} min, exit status {status}", flush=True)
        if status != 0:
            return status
    if not args.only:
        write_section(REPO / MARKDOWN, section(minutes, cold), MARK_START, MARK_END)
        print(f"make bench: {sum(minutes.values()):.1f} min in all ({'cold' if cold else 'warm'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
