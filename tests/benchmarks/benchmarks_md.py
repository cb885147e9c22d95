"""docs/BENCHMARKS.md: each benchmark script owns one section of it, between its own markers;
and the machine facts every section reports."""

import os
import platform
from pathlib import Path
from typing import Optional

HEADER = ("# Benchmarks\n\nScripts in `tests/benchmarks/` measure the engine against a baseline timed in the same run and write "
          "their own section of this file between markers. Timings are never part of pass/fail tests.\n")


def write_section(path: Path, section: str, mark_start: str, mark_end: str) -> None:
    """Replace the block from ``mark_start`` to ``mark_end`` with ``section`` (which holds both markers),
    or append it; the other sections are kept, and the file is replaced atomically."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if mark_start in text and mark_end in text:
        before, rest = text.split(mark_start, 1)
        text = before + section + rest.split(mark_end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _proc_field(path: str, name: str) -> Optional[str]:
    """The value of ``name: value`` in a /proc file, or None where there is no such file or line."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"


def ram_gib() -> Optional[float]:
    """Installed memory in GiB (MemTotal), or None where it cannot be read."""
    total = _proc_field("/proc/meminfo", "MemTotal")
    return int(total.split()[0]) / 2**20 if total else None


def os_name() -> str:
    """The distribution's name (os-release PRETTY_NAME) and the kernel, or platform's summary."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"') + f", kernel {platform.release()}"
    except OSError:
        pass
    return platform.platform()


def machine_line(**versions) -> str:
    """The machine a section was measured on: CPU and cores, RAM, OS, Python, then each ``name=version`` given."""
    ram = ram_gib()
    parts = [f"{cpu_model()}, {os.cpu_count()} cores", f"{ram:.0f} GiB RAM" if ram is not None else "RAM unknown",
             os_name(), f"Python {platform.python_version()}"]
    return ", ".join(parts + [f"{name} {version}" for name, version in versions.items()])
