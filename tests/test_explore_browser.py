"""The explorer page (explore.html) of the quick run in a real browser: Playwright driving
Debian's Chromium (never ``playwright install``). Moving the α and NMS sliders shows the AP that
analysis.scoring.rescore + analysis.measures.coco compute from the Parquet dump; the browser's filters draw the
boxes the embedded data says; no console error; the page keeps its weight budget; screenshots go
to test-artefacts/screenshots/."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


def _playwright():
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def embedded(page_file: Path) -> dict:
    """The JSON the page embeds."""
    m = re.search(r'<script id="explore-data" type="application/json">(.*?)</script>', page_file.read_text(), re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def expected_count(cands: dict, show: str, min_score: float, min_iou: float, levels: set[int]) -> int:
    """How many embedded candidates the page's filters let through (its ``visible``)."""
    return sum(1 for j in range(len(cands["s"]))
               if (show == "all" or cands["r"][j] >> int(show) & 1) and cands["s"][j] >= min_score
               and cands["i"][j] >= min_iou and cands["v"][j] in levels)


def set_range(page, selector: str, value: float) -> None:
    page.locator(selector).fill(str(value))
    page.locator(selector).dispatch_event("input")


def check_explorer(page_file: Path, run: Path, shots: Path) -> None:
    """Drive the page in Chromium and check it against the run's seed-0 dumps."""
    from analysis.inputs.io import load_dump
    from analysis.measures.coco import dump_coco_ap
    from analysis.scoring.rescore import inference_kwargs, rescore
    from retconf.explore import PAGE_BUDGET_BYTES, PLOTLY_JS

    sync_playwright = _playwright().sync_playwright
    text = page_file.read_text()
    assert (page_file.parent / PLOTLY_JS).is_file() and 'src="http' not in text
    assert len(text.encode()) <= PAGE_BUDGET_BYTES
    data = embedded(page_file)
    slider, browser = data["slider"], data["browser"]
    errors: list[str] = []
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = chrome.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"network: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
            page.goto(page_file.as_uri())
            page.wait_for_selector("#pr .main-svg")
            for a, t in ((slider["alphas"].index(0.7), slider["nms_ious"].index(0.6)),
                         (slider["alphas"].index(0.2), slider["nms_ious"].index(0.4))):
                set_range(page, "#alpha", a)
                set_range(page, "#nms", t)
                assert page.locator("#alpha-value").text_content() == f"{slider['alphas'][a]:.1f}"
                for name in ("retinanet", "retinanet_conf"):
                    dump = load_dump(run / "seed_0" / "dumps" / name)
                    mode = "cls" if name == "retinanet" else "pow"
                    dets = rescore(dump.candidates, mode, slider["alphas"][a],
                                   **{**inference_kwargs(dump.meta), "nms_iou": slider["nms_ious"][t]})
                    want = dump_coco_ap(dump, dets)["AP"]
                    cell = page.locator(f'td[data-detector="{name}"][data-metric="AP"]')
                    assert cell.text_content() == f"{want:.4f}" and float(cell.get_attribute("data-value")) == want
            page.screenshot(path=str(shots / "explore_slider.png"))

            # the browser: the image with the most embedded candidates of retinanet_conf
            page.select_option("#detector", "retinanet_conf")
            best = max(browser["images"], key=lambda im: len(im["cands"]["retinanet_conf"]["s"]))
            page.select_option("#image", str(best["id"]))
            page.locator("#image").dispatch_event("change")
            cands = best["cands"]["retinanet_conf"]
            levels = {int(v) for v in page.locator(".level").evaluate_all("xs => xs.map(x => x.value)")}
            assert int(page.locator("#count").text_content()) == len(cands["s"]) == page.locator("rect.cand").count()
            assert page.locator("rect.gt").count() == len(best["gt"])
            scores = sorted(cands["s"])
            cut = next((round(c, 2) for c in [x / 20 for x in range(1, 20)] if 0 < sum(s >= c for s in scores) < len(scores)), 0.0)
            set_range(page, "#min-score", cut)
            page.select_option("#show", "1")  # survivors of the deployed ranking
            page.locator("#show").dispatch_event("input")
            dropped = min(levels)
            page.locator(f'.level[value="{dropped}"]').uncheck()
            want = expected_count(cands, "1", cut, 0.0, levels - {dropped})
            assert int(page.locator("#count").text_content()) == want == page.locator("rect.cand").count()
            page.select_option("#show", "all")
            page.locator("#show").dispatch_event("input")
            want = expected_count(cands, "all", cut, 0.0, levels - {dropped})
            assert int(page.locator("#count").text_content()) == want == page.locator("rect.cand").count()
            page.locator(f'.level[value="{dropped}"]').check()
            set_range(page, "#min-score", 0)
            worst = browser["worst"]["retinanet_conf"]["wrong"] or browser["worst"]["retinanet_conf"]["missed"]
            if worst:  # an entry point: the worst image opens on a click
                page.locator(f'#lists a[data-image="{worst[0][0]}"]').first.click()
                assert page.locator("#image").input_value() == str(worst[0][0])
            page.locator("#canvas").scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "explore_browser.png"))
        finally:
            chrome.close()
    assert errors == []


def test_explorer_in_chromium(quick_run: dict) -> None:
    from tests.conftest import ROOT

    assert 'href="explore.html"' in (quick_run["reports"] / "index.html").read_text()  # the index links it
    check_explorer(quick_run["reports"] / "explore.html", quick_run["run"], ROOT / "test-artefacts" / "screenshots")


def test_the_check_sees_console_errors(tmp_path: Path) -> None:
    sync_playwright = _playwright().sync_playwright
    page_file = tmp_path / "bad.html"
    page_file.write_text("<html><body><script>throw new Error('broken page');</script></body></html>")
    errors: list[str] = []
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = chrome.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        chrome.close()
    assert any("broken page" in e for e in errors)
