"""The dashboard in a real browser: log in, the overview's charts, a filter
that swaps a chart, the live feed, a refund from the payment page, and a
screenshot of every page (artifacts/screenshots/, looked at by a human).

The 2-second bound on the live feed is the issue's functional requirement
(an event must reach an open page while it is looking), not a benchmark:
the p99 latency is measured in bench/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Console, PayLab, login, screenshot

pytestmark = pytest.mark.e2e


def _charts_ready(page: Page) -> None:
    page.wait_for_function(
        "document.querySelectorAll('[data-plotly] .main-svg').length > 0", timeout=15_000
    )


def test_log_in_and_the_overview_renders_its_charts(
    paylab: PayLab, operator_page: tuple[Page, Console]
) -> None:
    page, console = operator_page
    # given some payments, counted into the rollups
    for amount in ("1200", "3400", "990"):
        paylab.pay(amount=amount)
    paylab.pay(payment_method="pm_card_chargeDeclined", status=402)
    paylab.manage("rollups", "project")
    # when the operator opens the overview
    page.goto("/")
    # then Plotly draws every chart, and nothing complained
    _charts_ready(page)
    assert page.locator("[data-plotly]").count() >= 2
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(page, "overview")
    assert console.errors == []


def test_a_filter_swaps_a_chart_without_a_full_page_load(
    paylab: PayLab, operator_page: tuple[Page, Console]
) -> None:
    page, console = operator_page
    paylab.pay(amount="4200")
    paylab.manage("rollups", "project")
    page.goto("/")
    _charts_ready(page)
    # a marker that a full page load would wipe
    page.evaluate("window.__stillHere = true")
    old_chart = page.locator("[data-plotly]").first.element_handle()
    # when the range changes
    with page.expect_response(
        lambda r: "range=7d" in r.url and r.request.headers.get("hx-request") == "true"
    ):
        page.locator("label.ana-chip", has_text="7d").click()
    page.wait_for_url(re.compile(r"range=7d"))
    _charts_ready(page)
    # then the charts were swapped in place: same document, new chart elements
    assert page.evaluate("window.__stillHere") is True
    assert old_chart is not None and not old_chart.evaluate("el => el.isConnected")
    screenshot(page, "overview-7d")
    assert console.errors == []


def test_a_payment_made_through_the_api_appears_in_the_live_feed(
    paylab: PayLab, operator_page: tuple[Page, Console]
) -> None:
    page, console = operator_page
    # given the live feed, connected
    page.goto("/live/")
    expect(page.locator("#feed-status")).to_have_text("live", timeout=10_000)
    # when a payment is created through the API
    intent = paylab.pay(amount="7700")
    # then it is at the top of the feed within 2 s
    row = page.locator("#feed-rows tr", has_text=intent["id"]).first
    expect(row).to_be_visible(timeout=2_000)
    expect(page.locator("#feed-rows tr").first).to_contain_text(intent["id"])
    # and pausing holds new events until resumed
    page.get_by_role("button", name="Pause").click()
    held = paylab.pay(amount="100")
    expect(page.locator("#feed-status")).to_contain_text("new", timeout=5_000)
    assert page.locator("#feed-rows tr", has_text=held["id"]).count() == 0
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#feed-rows tr", has_text=held["id"]).first).to_be_visible()
    screenshot(page, "live-feed")
    assert console.errors == []


def test_a_refund_from_the_payment_page_appears_on_its_timeline(
    paylab: PayLab, operator_page: tuple[Page, Console]
) -> None:
    page, console = operator_page
    intent = paylab.pay(amount="5000")
    page.goto(f"/payments/{intent['id']}/")
    expect(page.locator("[data-live-indicator]")).to_have_text("live", timeout=10_000)
    # when the operator refunds 12.34, confirming
    page.get_by_label("Amount to refund").fill("12.34")
    page.get_by_role("button", name="Refund…").click()
    expect(page.locator("#payment-actions")).to_contain_text("Refund 12.34 USD")
    screenshot(page, "payment-refund-confirm")
    page.get_by_role("button", name="Yes, refund").click()
    # then the refund is on the timeline, and the page says so
    timeline = page.locator("#timeline-rows")
    expect(timeline).to_contain_text("refund.created")
    expect(page.locator("#payment-detail")).to_contain_text("Refund re_")
    # and a refund made elsewhere (the API) arrives live, without a reload
    page.evaluate("window.__stillHere = true")
    paylab.api("refunds", {"payment_intent": intent["id"], "amount": "100"})
    expect(timeline.locator("tr", has_text="refund.created")).to_have_count(2, timeout=5_000)
    assert page.evaluate("window.__stillHere") is True
    screenshot(page, "payment-detail")
    assert console.errors == []


def test_an_error_is_shown_inline(paylab: PayLab, operator_page: tuple[Page, Console]) -> None:
    page, console = operator_page
    intent = paylab.pay(amount="1000")
    page.goto(f"/payments/{intent['id']}/")
    page.get_by_label("Amount to refund").fill("99")
    page.get_by_role("button", name="Refund…").click()
    page.get_by_role("button", name="Yes, refund").click()
    expect(page.get_by_role("alert")).to_contain_text("greater than unrefunded amount")
    screenshot(page, "payment-error")
    # the 400 is the expected answer; Chromium logs every 4xx resource load
    assert [e for e in console.errors if "400" not in e] == []


def test_screenshots_of_every_page(browser: Browser, paylab: PayLab) -> None:
    """Every page, light and dark, wide and narrow, for a human to look at."""
    manual = paylab.pay(amount="8800", capture_method="manual", receipt_email="buyer@example.test")
    paylab.pay(amount="1500", payment_method="pm_card_createDispute")
    paylab.pay(amount="990", currency="jpy", payment_method="pm_card_mastercard")
    paylab.api("webhook_endpoints", {"url": "http://127.0.0.1:9/hooks", "enabled_events[]": "*"})
    paylab.pay(amount="1234")
    upi = paylab.api(
        "payment_intents",
        {
            "amount": "49900",
            "currency": "inr",
            "payment_method_data[type]": "upi",
            "payment_method_data[upi][vpa]": "slow@paylab",
            "confirm": "true",
        },
    )
    paylab.manage("rollups", "project")
    pages = {
        "overview": "/",
        "payments": "/payments/",
        "payments-filtered": "/payments/?status=succeeded&sort=-amount",
        "payments-empty": "/payments/?q=nobody@nowhere.test",
        "payment-capture": f"/payments/{manual['id']}/",
        "payment-upi": f"/payments/{upi['id']}/",
        "live": "/live/",
        "processors": "/processors/",
        "simulator": "/simulator/",
        "webhooks": "/webhooks/",
        "merchants": "/accounts/merchants/",
        "api-keys": f"/accounts/merchants/{paylab.cast['merchant_id']}/keys/",
    }
    for theme in ("light", "dark"):
        page, console = login(
            browser,
            paylab,
            "operator@e2e.test",
            color_scheme=theme,
            viewport={"width": 1360, "height": 900},
        )
        for name, path in pages.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            screenshot(page, f"{name}-{theme}")
        page.goto("/webhooks/")
        page.locator("a", has_text="Attempts").first.click()
        page.wait_for_load_state("networkidle")
        screenshot(page, f"webhook-delivery-{theme}")
        assert console.errors == []
        page.context.close()
    narrow, _ = login(browser, paylab, "owner@acme.test", viewport={"width": 390, "height": 844})
    for name, path in (
        ("payments", "/payments/"),
        ("payment-capture", f"/payments/{manual['id']}/"),
    ):
        narrow.goto(path)
        screenshot(narrow, f"{name}-mobile-owner")
    narrow.context.close()
