"""App benchmark: how fast the Streamlit app answers a person.

    .venv/bin/python benchmarks/app.py [--model BUNDLE] [--write]

* first page: `streamlit run apps/specsynth_app.py` started as a real server; seconds until the
  health endpoint answers, and until a full first run of the page (model load, library notes,
  first renders) has finished in an AppTest session. Target <= 10 s.
* slider: the A <-> B mix slider moved to new positions (4 s notes, default phase method), wall
  time of each rerun of the page in AppTest (only the section's fragment reruns). Target <= 300 ms.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from _common import ROOT, machine_line, publish, verdict

SECTION = "## App"
APP = ROOT / "apps" / "specsynth_app.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_ready_seconds(env):
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t
            except OSError:
                time.sleep(0.05)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    os.environ["SPECSYNTH_MODEL"] = args.model
    health = server_ready_seconds(dict(os.environ))

    from streamlit.testing.v1 import AppTest

    t = time.perf_counter()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    first = time.perf_counter() - t
    if at.exception or at.error:
        raise SystemExit(f"the app failed: {[e.message for e in at.exception] + [e.value for e in at.error]}")
    times = []
    for value in (0.2, 0.35, 0.5, 0.65, 0.8, 0.3, 0.7, 0.45):
        t = time.perf_counter()
        at.slider(key="interp_mix").set_value(value).run()
        times.append(time.perf_counter() - t)
    ms = 1000 * statistics.median(times)

    text = "\n".join([
        SECTION, "", f"`.venv/bin/python benchmarks/app.py --model {args.model} --write` on {machine_line()}", "",
        f"- server health endpoint answering {health:.1f} s after `streamlit run`",
        f"- {verdict(health + first <= 10)} first page ready (server up, then a full first run: model load, library "
        f"notes, first renders) {health + first:.1f} s (target <= 10 s)",
        f"- {verdict(ms <= 300)} mix slider moved on 4 s notes: new audio in {ms:.0f} ms median, "
        f"{1000 * max(times):.0f} ms worst of {len(times)} moves (target <= 300 ms)", ""])
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
