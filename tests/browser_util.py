"""A real headless browser for tests (Debian's chromium + chromium-driver through selenium).

Tests that need it take the ``browser`` fixture (tests/conftest.py), which skips when selenium,
chromium or its driver is missing. CI installs them (.ci/run)."""

from __future__ import annotations

import shutil
import tempfile
import time

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400")


def find_browser() -> tuple[str, str] | None:
    """(chromium binary, chromedriver) when both are installed, else None."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


def start_browser():
    """A headless Chrome with an empty profile and the browser console log captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = find_browser()
    opts = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="stale-chrome-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.binary_location = binary
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(driver))
    drv._stale_profile = profile
    return drv


def stop_browser(drv) -> None:
    profile = getattr(drv, "_stale_profile", None)
    drv.quit()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)


def open_page(drv, path, timeout: float = 15.0) -> None:
    """Load a local page and wait until its script finished (``body[data-ready]``)."""
    from pathlib import Path

    drv.get(Path(path).resolve().as_uri())
    wait_for(drv, "return document.body && document.body.dataset.ready === '1'", timeout)


def wait_for(drv, script: str, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.05)


def js_errors(drv) -> list[str]:
    """SEVERE browser-console entries plus errors the page's own handler caught."""
    logs = [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    return logs + list(drv.execute_script("return window.__staleErrors || []") or [])


def screenshot_stats(drv) -> tuple[float, int]:
    """(pixel standard deviation, number of distinct colours) of a screenshot."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB")).astype(np.int32)
    packed = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
    return float(img.std()), int(np.unique(packed).size)
