"""App benchmark: how fast the Streamlit app answers a person.

    .venv/bin/python benchmarks/app.py [--model BUNDLE] [--write]

* first page: `streamlit run apps/specsynth_app.py` started as a real server and loaded in
  headless Chromium: seconds until all five players are on the page. Target <= 10 s.
* slider: the A <-> B mix slider moved one step with the keyboard in the browser (4 s notes,
  default phase method): milliseconds until a new <audio> source appears. Target <= 300 ms.
  Also the same move in AppTest (whole-script rerun), for comparison.
* pad: the XY pad clicked at six new points in the browser: milliseconds from the mouse button's
  release (timed inside the pad's frame) to the new <audio> source. Target <= 300 ms.
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


def start_server(env):
    """``streamlit run`` on a free localhost port; returns (process, url, seconds until healthy)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    t = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while time.time() - t < 60:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url, time.time() - t
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("the app's server did not start within 60 s")


CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1400,1000")


# Timestamps are taken inside the page (a MutationObserver and a key listener, in epoch ms), not
# by polling it over WebDriver: on 2 cores a 5 ms polling loop slows the app and the browser it
# is measuring.
OBSERVER_JS = """
if (!window.__specsynth) {
  const state = window.__specsynth = {seen: new Set(), firstFive: null, newSrc: [], keys: []};
  const now = () => performance.timeOrigin + performance.now();
  const look = () => {
    for (const a of document.querySelectorAll('audio')) {
      const src = a.getAttribute('src');
      if (src && !state.seen.has(src)) { state.seen.add(src); state.newSrc.push([now(), src]); }
    }
    if (state.firstFive === null && state.seen.size >= 5) state.firstFive = now();
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true, attributes: true,
                                                attributeFilter: ['src']});
  document.addEventListener('keydown', () => state.keys.push(now()), true);
  look();
}
"""


# Installed inside the pad's frame (its own document): the time of each mouse release, in epoch ms.
RELEASE_JS = """
if (!window.__ups) { window.__ups = [];
  window.addEventListener('mouseup', () => window.__ups.push(performance.timeOrigin + performance.now()), true); }
return window.__ups.length;
"""
PAD_POINTS = ((0.2, 0.8), (0.7, 0.3), (0.4, 0.6), (0.9, 0.9), (0.1, 0.15), (0.6, 0.45))


def pad_timings(driver, wait_for):
    """Click the XY pad at each of PAD_POINTS; milliseconds from each release to a new <audio> source."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from specsynth.pictures import PadLayout

    next(t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]') if "XY pad" in t.text).click()
    time.sleep(1.0)
    frame = next(f for f in driver.find_elements(By.TAG_NAME, "iframe")
                 if "image_coordinates" in (f.get_attribute("title") or "") and f.is_displayed())
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    layout, times = PadLayout(), []
    for x, y in PAD_POINTS:
        driver.switch_to.frame(frame)
        driver.execute_script(RELEASE_JS)
        driver.switch_to.default_content()
        w, h = frame.size["width"], frame.size["height"]
        scale = w / layout.size[0]
        px, py = (layout.side + x * (layout.pad - 1)) * scale, (1 - y) * (layout.pad - 1) * scale
        count = driver.execute_script("return window.__specsynth.newSrc.length")
        ActionChains(driver).move_to_element_with_offset(frame, round(px - w / 2), round(py - h / 2)).click().perform()
        wait_for(f"return window.__specsynth.newSrc.length > {count}", 30)
        arrived = driver.execute_script("return window.__specsynth.newSrc")[count][0]
        driver.switch_to.frame(frame)
        released = driver.execute_script("return window.__ups[window.__ups.length - 1]")
        driver.switch_to.default_content()
        times.append(arrived - released)
        time.sleep(0.5)
    return times


def browser_timings(url, started_epoch, moves=6):
    """In headless Chromium: seconds from ``streamlit run`` to all five players on the page, the
    same for a second visit once the server is warm, the time from each mix-slider key press to a
    new <audio> source, and from each pad click's release to a new <audio> source (milliseconds)."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            def wait_for(script, timeout):
                deadline = time.time() + timeout
                while time.time() < deadline:
                    value = driver.execute_script(script)
                    if value:
                        return value
                    time.sleep(0.25)  # a slow look: the page keeps its own timestamps
                raise SystemExit("the page did not answer in time")

            driver.get(url)
            driver.execute_script(OBSERVER_JS)
            page_s = wait_for("return window.__specsynth.firstFive", 120) / 1000 - started_epoch
            slider = next(w for w in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]')
                          if "A ⟷ B" in w.text)
            thumb = (slider.find_elements(By.CSS_SELECTOR, '[role="slider"]')
                     or slider.find_elements(By.CSS_SELECTOR, 'input[type="range"]'))[0]
            ActionChains(driver).click(thumb if thumb.is_displayed() else thumb.find_element(By.XPATH, "./../..")).perform()
            time.sleep(1.0)
            times = []
            for _ in range(moves):
                count = driver.execute_script("return window.__specsynth.newSrc.length")
                ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
                wait_for(f"return window.__specsynth.newSrc.length > {count}", 30)
                state = driver.execute_script("return {keys: window.__specsynth.keys, src: window.__specsynth.newSrc}")
                times.append(state["src"][count][0] - state["keys"][-1])
                time.sleep(0.5)
            pad = pad_timings(driver, wait_for)
            # a second visit, on the now warm server (model and sounds cached): a new session's page
            opened = time.time()
            driver.get(url)
            driver.execute_script(OBSERVER_JS)
            warm_s = wait_for("return window.__specsynth.firstFive", 60) / 1000 - opened
            return page_s, warm_s, times, pad
        finally:
            driver.quit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pretrained")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    os.environ["SPECSYNTH_MODEL"] = args.model
    started = time.time()
    proc, url, health = start_server(dict(os.environ))
    try:
        page_s, warm_s, browser_ms, pad_ms = browser_timings(url, started)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    if at.exception or at.error:
        raise SystemExit(f"the app failed: {[e.message for e in at.exception] + [e.value for e in at.error]}")
    times = []
    for value in (0.2, 0.35, 0.5, 0.65, 0.8, 0.3, 0.7, 0.45):
        t = time.perf_counter()
        at.slider(key="interp_mix").set_value(value).run()
        times.append(time.perf_counter() - t)
    ms, pad = statistics.median(browser_ms), statistics.median(pad_ms)
    text = "\n".join([
        SECTION, "", f"`.venv/bin/python benchmarks/app.py --model {args.model} --write` on {machine_line()}", "",
        f"- server health endpoint answering {health:.1f} s after `streamlit run`",
        f"- {verdict(page_s <= 10)} first page ready (all five players on the page in headless Chromium) "
        f"{page_s:.1f} s after `streamlit run` (target <= 10 s)",
        f"- {verdict(warm_s <= 5)} first page of a new visit on the warm server (all five players on the page) "
        f"{warm_s:.1f} s after opening it (target <= 5 s)",
        f"- {verdict(ms <= 300)} mix slider moved one step in headless Chromium on 4 s notes: new audio source "
        f"{ms:.0f} ms after the key press (median of {len(browser_ms)}, worst {max(browser_ms):.0f} ms; "
        "target <= 300 ms)",
        f"- {verdict(pad <= 300)} XY pad clicked at {len(pad_ms)} new points in headless Chromium: new audio source "
        f"{pad:.0f} ms after the mouse button's release (median; worst {max(pad_ms):.0f} ms; target <= 300 ms)",
        f"- the same move in Streamlit's AppTest, which reruns the whole script rather than the section's "
        f"fragment: {1000 * statistics.median(times):.0f} ms median", ""])
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
