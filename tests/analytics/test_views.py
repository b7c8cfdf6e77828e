"""The overview page: full page, each partial with HX-Request, filters,
tenancy (merchant B's user sees none of A's data), the empty state."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import pytest

from accounts.models import User
from tests.analytics.conftest import Mix, pay, publish_and_project
from tests.conftest import MerchantWithKey, logged_in

pytestmark = pytest.mark.django_db

RANGES = ["1h", "24h", "7d", "30d", "90d"]


def _figures(html: str) -> list[dict]:
    found = re.findall(r'<script type="application/json">(.*?)</script>', html, re.S)
    return [json.loads(text) for text in found]


@pytest.fixture
def projected(mix: Mix) -> Mix:
    publish_and_project()
    return mix


def test_full_page_has_kpis_and_valid_plotly_figures(projected: Mix, operator_user: User) -> None:
    response = logged_in(operator_user).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="overview-body"' in html and 'id="overview-kpis"' in html
    assert "vendor/plotly-3.7.0.min.js" in html
    assert "HX-Request" in response["Vary"]
    figures = _figures(html)
    assert len(figures) == 11
    for figure in figures:
        go.Figure(figure)  # validates every property
    assert "Success rate" in html and "Average ticket" in html


@pytest.mark.parametrize("name", RANGES)
def test_range_partial(projected: Mix, operator_user: User, name: str) -> None:
    response = logged_in(operator_user).get(f"/?range={name}", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="overview-body"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]
    assert len(_figures(html)) == 11


def test_kpi_partial(projected: Mix, operator_user: User) -> None:
    response = logged_in(operator_user).get(
        "/analytics/kpis/?range=24h&currency=usd", HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="overview-kpis"')
    # merchant A in USD over 24 h: 5 succeeded, 2 failed
    assert ">5<" in html and "2 failed" in html
    assert "HX-Request" in response["Vary"]


def test_custom_range_and_bad_custom_range(projected: Mix, operator_user: User) -> None:
    start = projected.now.replace(tzinfo=None).isoformat(timespec="minutes")
    client = logged_in(operator_user)
    bad = client.get(f"/?range=custom&start={start}&end={start}", HTTP_HX_REQUEST="true")
    assert "needs a start before its end" in bad.content.decode()
    good = client.get(
        "/?range=custom&start=2000-01-01T00:00&end=2000-01-02T00:00", HTTP_HX_REQUEST="true"
    )
    assert "No payments in this range yet" in good.content.decode()


def test_filters_narrow_the_numbers(projected: Mix, operator_user: User) -> None:
    client = logged_in(operator_user)
    eur = client.get(
        f"/analytics/kpis/?merchant={projected.a.pk}&currency=eur", HTTP_HX_REQUEST="true"
    )
    assert "50.00 EUR" in eur.content.decode()
    gbp = client.get(
        f"/analytics/kpis/?merchant={projected.b.pk}&currency=gbp", HTTP_HX_REQUEST="true"
    )
    assert "777.00 GBP" in gbp.content.decode()
    nothing = client.get("/analytics/kpis/?processor=no-such-processor", HTTP_HX_REQUEST="true")
    assert ">0<" in nothing.content.decode()


def test_merchant_user_sees_only_their_merchant(projected: Mix, owner_b: User) -> None:
    client = logged_in(owner_b)
    # B's overview shows B's GBP volume and nothing of A's
    html = client.get("/analytics/kpis/", HTTP_HX_REQUEST="true").content.decode()
    assert "777.00 GBP" in html and "1 failed" in html
    page = client.get("/").content.decode()
    assert "Merchant A" not in page
    assert "EUR" not in page  # A's currency is not even a filter option
    # asking for A by id is a 404, on the page and on the partial
    assert client.get(f"/?merchant={projected.a.pk}").status_code == 404
    assert client.get(f"/analytics/kpis/?merchant={projected.a.pk}").status_code == 404


def test_merchant_viewer_sees_their_merchant(projected: Mix, viewer_a: User) -> None:
    html = logged_in(viewer_a).get("/analytics/kpis/?currency=usd").content.decode()
    assert ">5<" in html


def test_empty_state_says_start_a_simulation(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    html = logged_in(operator_user).get("/").content.decode()
    assert "Start a simulation" in html
    assert _figures(html) == []


def test_live_numbers_follow_the_projector(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    client = logged_in(operator_user)
    pay(merchant_a.merchant, amount=4_200)
    publish_and_project()
    assert "42.00 USD" in client.get("/analytics/kpis/").content.decode()


def test_login_required(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/").status_code == 302
    assert client.get("/analytics/kpis/").status_code == 302
