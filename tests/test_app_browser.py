"""The Streamlit app in a real browser: `streamlit run` as a server, headless Chromium as the user.

Moves the interpolation slider with the keyboard and clicks the XY pad, as a person would, and
checks that the page gets a new player (a new <audio> source); checks at 1280 and 1920 px wide
that no metric is cut short (screenshots beside the test's tmp_path). Needs Debian's chromium and chromium-driver
(scripts/install_browser.sh, run by `make install`) and the selenium package; when either is
missing the test fails with the reason rather than being skipped.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from tiny_model import tiny_bundle_fixture

CHROMIUM = os.environ.get("SPECSYNTH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SPECSYNTH_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)
SERVER_START_S = 90   # until /_stcore/health answers
PAGE_LOAD_S = 150     # first page: TensorFlow, the model, the first renders (a loaded 2-core machine)
RERENDER_S = 60       # after the slider moves

tiny_bundle = tiny_bundle_fixture()


def require_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run scripts/install_browser.sh "
                    "(apt-get install chromium chromium-driver) to run the browser test", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the selenium package is missing: pip install selenium (see requirements.txt)", pytrace=False)


@pytest.fixture(scope="session")
def chromium():
    """Checked first (before the session's tiny model is trained), so a missing browser fails fast."""
    require_browser()
    return CHROMIUM


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path, n=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


@pytest.fixture
def server(tiny_bundle, tmp_path):
    port = free_port()
    env = dict(os.environ, SPECSYNTH_MODEL=str(tiny_bundle))
    log = tmp_path / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "apps" / "specsynth_app.py"),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
           "--server.runOnSave", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log_tail(log)}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy in {SERVER_START_S} s:\n{log_tail(log)}",
                            pytrace=False)
            time.sleep(0.25)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
def browser(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition, timeout, what, log):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:  # the page re-rendered under us: look again
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\nserver log:\n{log_tail(log)}", pytrace=False)


def players_ready(browser, log):
    """Wait for all five players (A, mix, B, XY pad, loop); return the set of their sources."""
    from selenium.webdriver.common.by import By

    def sources():
        return {a.get_attribute("src") for a in browser.find_elements(By.TAG_NAME, "audio")} - {None, ""}

    def error():
        return browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlert"]')

    wait_for(lambda: len(sources()) >= 5 or error(), PAGE_LOAD_S, "the app's five players", log)
    assert not error(), error()[0].text
    return sources


def open_tab(browser, label, log):
    from selenium.webdriver.common.by import By

    def tab():
        return [t for t in browser.find_elements(By.CSS_SELECTOR, '[role="tab"], [data-testid="stTab"]')
                if label in t.text]

    wait_for(tab, 10, f"the {label} tab", log)[0].click()


def test_moving_the_mix_slider_in_a_browser_plays_a_new_mix(chromium, server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, log = server
    browser.get(url)
    audio_sources = players_ready(browser, log)
    before = audio_sources()
    assert all(src.startswith(f"{url}/media/") and src.endswith(".wav") for src in before), before

    def mix_slider():
        for widget in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]'):
            if "A ⟷ B" in widget.text:
                return widget
        return None

    widget = wait_for(mix_slider, 30, "the A ⟷ B slider", log)
    # Streamlit's slider thumb: role="slider" (older versions) or a visually hidden range input
    # inside the thumb (react-aria); either takes focus on click and moves with the arrow keys.
    thumbs = widget.find_elements(By.CSS_SELECTOR, '[role="slider"]') or widget.find_elements(
        By.CSS_SELECTOR, 'input[type="range"]')
    assert thumbs, widget.get_attribute("outerHTML")[:2000]
    thumb = thumbs[0]
    target = thumb if thumb.is_displayed() else thumb.find_element(By.XPATH, "./../..")
    assert "0.50" in widget.text
    ActionChains(browser).click(target).perform()
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT * 5).perform()

    # five steps of 0.01 (the widget is looked up again: a rerun may replace its node)
    wait_for(lambda: "0.55" in (mix_slider() or widget).text, 10, "the slider to show 0.55", log)

    def mix_rerendered():
        body = browser.find_element(By.TAG_NAME, "body").text
        return "45% A + 55% B" in body and audio_sources() - before

    new = wait_for(mix_rerendered, RERENDER_S, "the mix at 0.55 with a new <audio> source", log)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlert"]')
    # only the mix was rendered again: A, B, the XY pad and the loop keep their players
    now = audio_sources()
    assert len(new) == 1 and len(now) == 5 and len(now & before) == 4, (before, now)


# Every metric's value, as the app formats it; a value the page cut short ("958…") fails the match.
METRIC_VALUES = {"Render": r"\d+ ms", "To A": r"-?\d+\.\d dB", "To B": r"-?\d+\.\d dB",
                 "Pitch": r"([A-G]#?-?\d \(\d+\)|unpitched)", "Seam flux": r"\d+\.\d\d", "Typical flux": r"\d+\.\d\d"}
CUT_JS = """
return Array.from(document.querySelectorAll('[data-testid="stMetric"]')).filter(m => m.offsetParent !== null)
  .map(m => ({label: m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
              value: m.querySelector('[data-testid="stMetricValue"]').innerText.trim(),
              cut: Array.from(m.querySelectorAll('*')).filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
                     .map(e => e.innerText)}));
"""


def test_metrics_fit_at_1280_and_1920_px(chromium, server, browser, tmp_path):
    import re

    url, log = server
    browser.set_window_size(1280, 1000)
    browser.get(url)
    players_ready(browser, log)
    for width in (1280, 1920):
        browser.set_window_size(width, 1000)
        time.sleep(0.5)
        seen = []
        for tab in ("Interpolate", "XY pad", "Loops"):
            open_tab(browser, tab, log)
            metrics = wait_for(lambda: browser.execute_script(CUT_JS), 10, f"the metrics of {tab}", log)
            browser.save_screenshot(str(tmp_path / f"app-{width}px-{tab.replace(' ', '-')}.png"))
            for m in metrics:
                # the text the page shows is the whole value, and nothing in the metric overflows its box
                assert m["label"] in METRIC_VALUES, m
                assert re.fullmatch(METRIC_VALUES[m["label"]], m["value"]) and "…" not in m["value"], (width, m)
                assert not m["cut"], (width, m)
            seen += [m["label"] for m in metrics]
        assert sorted(seen) == sorted(["Render"] * 3 + ["To A", "To B", "Pitch", "Seam flux", "Typical flux"]), seen


def test_clicking_the_pad_in_a_browser_plays_the_new_point(chromium, server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from specsynth.pictures import PadLayout

    url, log = server
    browser.get(url)
    sources = players_ready(browser, log)
    before = sources()
    open_tab(browser, "XY pad", log)
    frame = wait_for(lambda: [f for f in browser.find_elements(By.TAG_NAME, "iframe")
                              if "image_coordinates" in (f.get_attribute("title") or "") and f.is_displayed()
                              and f.size["height"] > 50], 30, "the pad", log)[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
    browser.save_screenshot(str(tmp_path / "pad.png"))
    # the picture fills the frame's width from its top-left corner; offsets are from the frame's centre
    layout, w, h = PadLayout(), frame.size["width"], frame.size["height"]
    scale = w / layout.size[0]
    px, py = (layout.side + 0.25 * (layout.pad - 1)) * scale, 0.25 * (layout.pad - 1) * scale  # (0.25, 0.75)
    ActionChains(browser).move_to_element_with_offset(frame, round(px - w / 2), round(py - h / 2)).click().perform()

    import re

    def moved():
        found = re.search(r"Pad at x=([\d.]+), y=([\d.]+)", browser.find_element(By.TAG_NAME, "body").text)
        point = found and (float(found.group(1)), float(found.group(2)))
        return point and point != (0.5, 0.5) and sources() - before and point

    x, y = wait_for(moved, RERENDER_S, "the pad's point to move and a new <audio> source", log)
    assert abs(x - 0.25) <= 0.02 and abs(y - 0.75) <= 0.02, (x, y)
    # only the XY mix was rendered again
    now = sources()
    assert len(now) == 5 and len(now & before) == 4, (before, now)
