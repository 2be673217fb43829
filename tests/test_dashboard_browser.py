"""The dashboard served for real and opened in headless Chromium (Debian's `chromium`, driven by Playwright):
wait for the charts to render, check the text, and save a screenshot per page in test-artifacts/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.kafka.broker import free_port
from monitor.records import RawItem, ScoredItem
from monitor.store import Store
from tests.conftest import REPO
from tests.dashboard_seed import seed

CHINESE = "贵州茅台一季度净利润同比增长18%，超出市场预期"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {  # url path ("" = the default page, Overview) -> (a selector proving the content rendered, expected text)
    "": ('[data-testid="stVegaLiteChart"] svg', "Market sentiment index"),
    "news": ('[data-testid="stDataFrame"]', "News explorer"),
    "ticker": ('[data-testid="stVegaLiteChart"] svg', "Headlines"),
    "system": ('[data-testid="stMetric"]', "Items stored"),
    "alerts": ('[data-testid="stMain"]', "Alerts"),
    "backtest": ('[data-testid="stMain"]', "finmon backtest"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "Debian chromium is required for the browser test: `make test` installs it (apt-get install chromium)"
        )
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'finmon.db'}"
    items = seed(url)
    add_chinese_headline(url, max(s.item.published_at for s in items) + timedelta(minutes=5))
    port = free_port()
    env = {
        "FINMON_STORE_URL": url,
        "FINMON_BOOTSTRAP": "127.0.0.1:1",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("home")),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "dashboard", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(base + "/_stcore/health", proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # SIGTERM to `finmon dashboard` stops the streamlit server it started, not just itself
    deadline = time.monotonic() + 10
    while _serving(base) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _serving(base), "the streamlit server outlived `finmon dashboard` after SIGTERM"


def add_chinese_headline(url: str, when: datetime) -> None:
    """The newest item, so the news explorer lists it first (written for this test)."""
    raw = RawItem(id="zh-1", title=CHINESE, published_at=when, source="cn-wire", lang="zh",
                  tickers=("600519.SH",))
    scored = ScoredItem(item=raw, topic="Financials", topic_probs={"Financials": 1.0}, sentiment="positive",
                        sentiment_probs={"negative": 0.05, "neutral": 0.15, "positive": 0.8}, model_version="test",
                        scored_at=when, src_partition=0, src_offset=99_999)
    Store(url).upsert_scored([scored], when)


def _serving(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def test_every_page_renders_in_a_real_browser(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, (selector, text) in PAGES.items():
            page.goto(f"{server}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector(selector, timeout=60_000)
            page.wait_for_function(f"document.body.innerText.includes({text!r})", timeout=60_000)
            page.wait_for_timeout(800)  # let Vega finish drawing before the screenshot
            assert "Traceback" not in page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / f"dashboard-{path or 'overview'}.png"), full_page=True)
        browser.close()
    assert all((ARTIFACTS / f"dashboard-{p or 'overview'}.png").stat().st_size > 10_000 for p in PAGES)


# Two different CJK strings drawn with the page's fonts: real glyphs differ, missing-glyph boxes ("tofu") do not.
# The news explorer's table is drawn on a canvas too, with the same fallback fonts.
GLYPHS = """() => {
  const canvas = document.createElement('canvas'); canvas.width = 96; canvas.height = 40;
  const ctx = canvas.getContext('2d');
  const draw = (text) => { ctx.clearRect(0, 0, 96, 40); ctx.font = '28px "Source Sans Pro", sans-serif';
                           ctx.fillText(text, 0, 30); return ctx.getImageData(0, 0, 96, 40).data.join(','); };
  return [draw('贵州'), draw('腾讯'), draw('')];
}"""


def test_chinese_headlines_render_with_real_glyphs(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/news", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
        page.wait_for_timeout(800)
        first, second, empty = page.evaluate(GLYPHS)
        page.screenshot(path=str(ARTIFACTS / "dashboard-news-chinese.png"), full_page=True)
        browser.close()
    assert first != empty and second != empty  # something was drawn
    assert first != second, "CJK text renders as missing-glyph boxes: install fonts-noto-cjk (make tools)"
