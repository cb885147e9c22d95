#!/usr/bin/env python3
"""Write docs/ROBUSTNESS.md: the bad-input matrix of every Processing algorithm, with the messages seen.

    .venv/bin/python scripts/robustness_doc.py

Runs ``tests/test_bad_input_matrix.py`` with ``ROBUSTNESS_RECORD`` set, so each case records
the error message QGIS showed, then renders the table (the cases come from the test module,
so the document cannot list a case the tests do not run). The fault-injection section is
kept from the existing document (between its markers).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ROBUSTNESS.md"
MARK_START, MARK_END = "<!-- bad-input-matrix:start -->", "<!-- bad-input-matrix:end -->"
WHERE = {"tmp": "the output folder", "read_only": "a read-only filesystem", "full": "a 64 kB filesystem",
         "database": "completes; its output holds every good segment once"}


def row_key(case) -> str:
    return f"| `{case.algorithm}` | {case.name} |"


def matrix_table(cases, messages=None) -> str:
    messages = messages or {}
    lines = ["| algorithm | bad input | message shown (Processing log / task manager) | checked afterwards |",
             "|---|---|---|---|"]
    for case in cases:
        message = messages.get(f"{case.algorithm}: {case.name}", "")
        message = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/(test_[^/]+/work/)?", "<tmp>/", " ".join(message.split()))
        message = re.sub(r"__\d+_\d+_[0-9a-f]+(_\d+)?", "__<fragment>", message).replace("|", "\\|")  # stable between runs
        message = re.sub(r"process \d+ on [\w.-]+", "process <pid> on <host>", message)
        if len(message) > 220:
            message = message[:217] + "..."
        lines.append(f"{row_key(case)} {message or '(not recorded)'} | {WHERE[case.output]} |")
    return "\n".join(lines)


def _cases():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_bad_input_matrix import CASES

    return CASES


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "messages.jsonl"
        env = dict(os.environ, ROBUSTNESS_RECORD=str(record))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_bad_input_matrix.py"),
                                 "-k", "not robustness_doc"], cwd=ROOT, env=env)
        if result.returncode != 0:
            print("the bad-input matrix did not pass: docs/ROBUSTNESS.md not updated", file=sys.stderr)
            return result.returncode
        messages = {}
        for line in record.read_text().splitlines():
            entry = json.loads(line)
            messages[entry["case"]] = entry["message"]
    cases = _cases()
    section = "\n".join([MARK_START, matrix_table(cases, messages), MARK_END])
    text = DOC.read_text(encoding="utf-8")
    before, rest = text.split(MARK_START, 1)
    after = rest.split(MARK_END, 1)[1]
    DOC.write_text(before + section + after, encoding="utf-8")
    print(f"wrote {DOC} ({len(cases)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
