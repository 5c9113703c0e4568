"""The HTML report in a real headless browser (chromium through selenium): no JavaScript errors,
the slider filters detections, clicking a detection seeks the video, the playhead follows the
player, tables sort, and the page is not blank. Skipped where no browser is installed."""

from __future__ import annotations

import json
import time

import pytest

from browser_util import js_errors, open_page, screenshot_stats, wait_for
from media_util import write_shapes_video
from report_util import make_demo_folder, make_experiment_folder, make_run_folder

pytest.importorskip("av")

SCORES = [0.05, 0.12, 0.2, 0.31, 0.38, 0.45, 0.52, 0.66, 0.71, 0.83, 0.9, 0.97]
CLASSES = ["red square", "blue circle"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from stale.reporting.page import Report, Section, VideoView, paragraph as p, relative_src
    from stale.reporting.render import write_report
    from stale.reporting.summaries import evaluation_sections

    root = tmp_path_factory.mktemp("html")
    video = write_shapes_video(root / "media" / "clip one.mp4", [(4, "red square"), (4, None), (4, "blue circle")])
    dets = [{"segment": [0.9 * i, 0.9 * i + 1.5], "label": CLASSES[i % 2], "score": s} for i, s in enumerate(SCORES)]
    other = [{"segment": [2.0, 6.0], "label": "red square", "score": 0.8}]
    gt = [{"segment": [0.0, 4.0], "label": "red square"}, {"segment": [8.0, 12.0], "label": "blue circle"}]
    out = root / "pages" / "report.html"
    methods = {"A": {"tiou": [0.3, 0.5], "mAP": [0.5, 0.25], "average_mAP": 0.375,
                     "per_class_ap": {"red square": [0.6, 0.3], "blue circle": [0.4, 0.2]}},
               "control of A": {"tiou": [0.3, 0.5], "mAP": [0.02, 0.01], "average_mAP": 0.015,
                                "per_class_ap": {"red square": [0.0, 0.0], "blue circle": [0.04, 0.02]}}}
    rep = Report("browser test", [Section("About", [p("a page made by the browser test")]),
                                  *evaluation_sections(methods, [("A", "control of A")])],
                 [VideoView("clip one", 12.0, {"A": dets, "B": other}, gt, relative_src(video, out), CLASSES),
                  VideoView("no video", 30.0, {"A": dets[:3]}, [], None, CLASSES)])
    write_report(rep, out)
    return out, dets


def _visible(drv, section, selector):
    return drv.execute_script(
        "return Array.prototype.filter.call(arguments[0].querySelectorAll(arguments[1]),"
        " function(e){ return e.offsetParent !== null && !e.hidden; }).length", section, selector)


def _current_time(drv, want: float, timeout: float = 10.0) -> float:
    """The first video's currentTime once it is within 0.05 s of ``want`` (or at the timeout)."""
    end = time.monotonic() + timeout
    while True:
        t = drv.execute_script("return document.querySelector('section.video video').currentTime")
        if abs(t - want) < 0.05 or time.monotonic() > end:
            return t
        time.sleep(0.05)


def _section(drv, index=0):
    return drv.find_elements("css selector", "section.video")[index]


def test_loads_without_javascript_errors(browser, page):
    out, _ = page
    open_page(browser, out)
    assert js_errors(browser) == []
    assert browser.title == "browser test"
    assert len(browser.find_elements("css selector", "section.video")) == 2
    # one track per class, ground truth drawn, images inlined
    sec = _section(browser)
    assert [t.get_attribute("data-label") for t in sec.find_elements("css selector", ".track")] == CLASSES
    assert len(sec.find_elements("css selector", ".seg.gt")) == 2
    assert all(i.get_attribute("src").startswith("data:image/png;base64,")
               for i in browser.find_elements("css selector", "figure img"))


def test_slider_filters_detections(browser, page):
    out, dets = page
    open_page(browser, out)
    sec = _section(browser)
    slider = sec.find_element("css selector", "input.threshold")
    # the slider starts at the 10th best score
    assert float(slider.get_attribute("value")) == pytest.approx(sorted(SCORES, reverse=True)[9])
    for thr in (0.0, 0.5, 0.95, 1.0):
        browser.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", slider, thr)
        want = sum(s >= thr for s in SCORES)
        assert _visible(browser, sec, ".seg.det") == want
        assert _visible(browser, sec, "tr.det-row") == want
        count = sec.find_element("css selector", ".count")
        assert count.get_attribute("data-shown") == str(want) and count.get_attribute("data-total") == str(len(SCORES))
        shown = sorted(float(e.get_attribute("data-score")) for e in sec.find_elements("css selector", ".seg.det"))
        assert shown == sorted(s for s in SCORES if s >= thr)
    # keyboard works too: Home -> 0 shows everything
    from selenium.webdriver.common.keys import Keys

    slider.send_keys(Keys.HOME)
    assert _visible(browser, sec, ".seg.det") == len(SCORES)
    assert js_errors(browser) == []


def test_clicking_a_detection_seeks_the_video_and_the_playhead_follows(browser, page):
    out, dets = page
    open_page(browser, out)
    sec = _section(browser)
    wait_for(browser, "return document.querySelector('section.video video').readyState >= 1")
    assert browser.execute_script("return document.querySelector('section.video video').duration") == pytest.approx(12.0, abs=0.2)
    head = sec.find_element("css selector", ".playhead")
    left0 = head.value_of_css_property("left")
    bar = max(sec.find_elements("css selector", ".seg.det"), key=lambda e: float(e.get_attribute("data-start")))
    start = float(bar.get_attribute("data-start"))
    assert start > 5
    bar.click()
    assert _current_time(browser, start) == pytest.approx(start, abs=0.05)
    assert head.value_of_css_property("left") != left0
    # the playhead sits at currentTime / duration of the lanes' width
    lanes = sec.find_element("css selector", ".lanes")
    x = float(head.value_of_css_property("left").rstrip("px"))
    off = browser.execute_script("return arguments[0].offsetLeft", lanes)
    assert (x - off) / lanes.size["width"] == pytest.approx(start / 12.0, abs=0.01)
    # a table row seeks as well
    row = sec.find_elements("css selector", "tr.det-row")[0]        # the best score: 0.97, start 9.9
    browser.execute_script("arguments[0].scrollIntoView()", row)
    row.click()
    want = float(row.get_attribute("data-start"))
    assert _current_time(browser, want) == pytest.approx(want, abs=0.05)
    # the player moving the time moves the playhead (timeupdate)
    browser.execute_script("document.querySelector('section.video video').currentTime = 3.0")
    wait_for(browser, "var h = document.querySelector('section.video .playhead'), l = document.querySelector('section.video .lanes');"
                      "return Math.abs((parseFloat(h.style.left) - l.offsetLeft) / l.offsetWidth - 0.25) < 0.01")
    assert js_errors(browser) == []


def test_tables_sort_and_methods_switch(browser, page):
    out, _ = page
    open_page(browser, out)
    sec = _section(browser)
    head = sec.find_elements("css selector", "table.dets th")[4]      # score
    head.click()
    scores = [float(r.get_attribute("data-score")) for r in sec.find_elements("css selector", "tr.det-row")]
    assert scores == sorted(scores)
    head.click()
    scores = [float(r.get_attribute("data-score")) for r in sec.find_elements("css selector", "tr.det-row")]
    assert scores == sorted(scores, reverse=True)
    from selenium.webdriver.support.ui import Select

    Select(sec.find_element("css selector", "select.method")).select_by_value("B")
    assert len(sec.find_elements("css selector", "tr.det-row")) == 1
    # the metrics table sorts by its numbers
    mt = browser.find_element("css selector", "#metrics table")
    mt.find_elements("css selector", "th")[-1].click()
    rows = [r.find_elements("css selector", "td")[0].text for r in mt.find_elements("css selector", "tbody tr")]
    assert rows == ["control of A", "A"]
    assert js_errors(browser) == []


def test_screenshot_is_not_blank(browser, page):
    out, _ = page
    open_page(browser, out)
    std, colours = screenshot_stats(browser)
    assert std > 20 and colours > 100


@pytest.mark.parametrize("kind", ["demo", "run", "bare run", "experiment"])
def test_folder_reports_load_without_errors(browser, tmp_path, kind):
    from stale.reporting.folders import write_folder_report

    folder = {"demo": lambda: make_demo_folder(tmp_path / "d"), "run": lambda: make_run_folder(tmp_path / "r"),
              "bare run": lambda: make_run_folder(tmp_path / "b", with_predictions=False),
              "experiment": lambda: make_experiment_folder(tmp_path / "e")}[kind]()
    out = write_folder_report(folder).default_out
    open_page(browser, out)
    assert js_errors(browser) == []
    n = len(json.loads(browser.find_element("id", "stale-data").get_attribute("textContent"))["videos"])
    assert len(browser.find_elements("css selector", "section.video")) == n
    std, _ = screenshot_stats(browser)
    assert std > 10
