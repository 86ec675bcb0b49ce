"""Shared by the benchmark scripts: machine description and RESULTS.md section writing."""
from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nLatest measured numbers; each section is written by its own script in benchmarks/.\n\n"


def load_average():
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name():
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine_line():
    """One line: CPU, cores, Python, load average and the date (UTC)."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
            f"{load_average()}; {date}")


def write_section(heading, section):
    """Replace the section that starts with ``heading`` in RESULTS.md (up to the next ``## ``), keep the rest."""
    from specsynth.files import atomic_output

    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    new = section.rstrip("\n") + "\n"
    if start is None:
        body = text.rstrip("\n") + "\n\n" + new if text.strip() else new
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        body = "".join(lines[:start]) + new + ("\n" + tail if tail else "")
    with atomic_output(RESULTS, overwrite=True) as tmp:
        Path(tmp).write_text(body)


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def publish(heading, text, write):
    """Print a section; with ``write``, also put it into RESULTS.md."""
    print(text)
    if write:
        write_section(heading, text)
