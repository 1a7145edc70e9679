"""End to end in a real headless browser: log in, search, dashboard, fix a watch query, tune the alert
rule, ack an incident.

Debian's `chromium` driven by Playwright, against the app served by uvicorn on
loopback over a real store. A screenshot of each page goes to
`test-artifacts/screenshots/` (or $LISTENER_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listener.web.background import BackgroundWeb
from tests.store_contract import make_mention
from tests.test_web_incidents import open_incident
from tests.webapp import PASSWORD, WebWorld, make_world, recent, seed

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("LISTENER_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = (
    Path(os.environ.get("LISTENER_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
    / "screenshots"
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


@pytest.fixture
def browser_page() -> Iterator[object]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (the test extra has it)"
    )
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        yield page
        browser.close()


def history(world: WebWorld) -> None:
    """A day of mentions with a negative burst in the last hour, and one hostile post."""
    seed(world.store)
    rows = []
    for i in range(120):
        label = "negative" if i < 30 and i % 2 == 0 else ("positive" if i % 3 == 0 else "neutral")
        rows.append(
            make_mention(
                f"acme fiber update {i}: speeds and outage reports",
                label=label,
                published=recent(i * 11),
                key=f"h{i}",
                author=f"user{i % 7}",
                site=f"site{i % 4}.example.com",
            )
        )
    rows.append(
        make_mention(
            'acme <img src=x onerror="window.__xss=1"> \u202eevil',
            key="xss",
            url="javascript:window.__xss=2",
            published=recent(5),
            label="negative",
        )
    )
    world.store.upsert(rows)


def test_an_analyst_and_a_responder_work_through_the_app(world: WebWorld, browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    history(world)
    number = open_incident(world)
    world.accounts.add_user("ana", "admin", PASSWORD)
    SHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    web = BackgroundWeb(world.config).start()
    try:
        page.goto(f"{web.url}/search")
        expect(page).to_have_url(f"{web.url}/login")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Acme")  # the dashboard is home

        page.goto(f"{web.url}/search")
        page.fill("input[name=q]", "acme AND (outage")
        expect(page.locator(".live-check")).to_contain_text("^", timeout=5000)  # checked as typed
        page.fill("input[name=q]", "acme AND outage")
        page.select_option("select[name=sentiment]", "negative")
        page.click(".filters button[type=submit]")
        expect(page.locator(".total")).to_contain_text("mention(s)")
        expect(page.locator("mark", has_text="outage").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "search.png"), full_page=False)

        page.goto(f"{web.url}/search?q=evil")
        expect(page.locator(".mention")).to_have_count(1)
        assert page.evaluate("window.__xss") is None
        assert page.locator(".mention a[href^='javascript']").count() == 0

        page.goto(f"{web.url}/dashboard?brand=Acme&window=24h")
        expect(page.locator("svg.chart")).to_be_visible()
        expect(page.locator("svg.chart .mark")).to_have_count(1)
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

        page.goto(f"{web.url}/watch-terms/Acme")
        page.fill("textarea[name=queries]", "acme\nacme NEAR/x fiber")
        page.click("button[value=save]")
        expect(page.locator("pre.caret")).to_contain_text("^")
        page.screenshot(path=str(SHOTS / "watch-terms-error.png"))
        page.fill("textarea[name=queries]", "acme\nacme NEAR/3 fiber")
        page.click("button[value=preview]")
        expect(page.locator(".preview h2")).to_contain_text("would have matched")
        page.click("button[value=save]")
        expect(page.locator(".ok")).to_contain_text("Saved")
        expect(page.locator(".history li").first).to_contain_text("by ana")

        page.fill("form.rule input[name=min_count]", "0")  # the alert rule, on the same page
        page.click("form.rule button[type=submit]")
        expect(page.locator("#err-min_count")).to_contain_text("greater than or equal to 1")
        expect(page.locator("form.rule input[name=min_count]")).to_have_attribute("aria-invalid", "true")
        page.fill("form.rule input[name=min_count]", "12")
        page.click("form.rule button[type=submit]")
        expect(page.locator(".ok")).to_contain_text("Alert rule saved")
        expect(page.locator("form.rule input[name=min_count]")).to_have_value("12")
        expect(page.locator(".history li").first).to_contain_text("min_count: 5 → 12")
        page.screenshot(path=str(SHOTS / "brand-settings.png"), full_page=True)

        page.goto(f"{web.url}/incidents/{number}")
        page.click("button[value=ack]")
        expect(page.locator(".state").first).to_have_text("acknowledged")
        expect(page.locator(".timeline")).to_contain_text("acknowledged by ana")
        page.goto(f"{web.url}/incidents")
        page.screenshot(path=str(SHOTS / "incidents.png"), full_page=True)
        page.goto(f"{web.url}/incidents/{number}")
        page.screenshot(path=str(SHOTS / "incident.png"), full_page=True)
    finally:
        web.stop()
    time.sleep(0)
    assert violations == [], violations
