"""Spend caps as a person gives them: on the brief (errors name the field), on the
schedule's command line, and in the deployment's currency only."""

from __future__ import annotations

import pytest

from faceloop.briefs import brief_and_config
from faceloop.cost import check_cap_currency, measure, parse_spend_cap
from faceloop.errors import InputError
from faceloop.models import SpendCap

BRIEF = {
    "product": "Lumen SPF 50",
    "message": "Sun protection that feels like nothing.",
    "audience": [{"name": "all", "share": 1.0}],
    "markets": ["DE"],
    "budget_impressions": 10000,
}


def test_a_brief_carries_a_spend_cap() -> None:
    brief, _ = brief_and_config({**BRIEF, "spend_cap": {"amount": 250, "currency": "EUR"}}, "b")
    assert brief.spend_cap == SpendCap(amount=250.0, currency="EUR", include_compute=True)
    brief, _ = brief_and_config(BRIEF, "b")
    assert brief.spend_cap is None


@pytest.mark.parametrize(
    ("cap", "field"),
    [
        ({"amount": 0, "currency": "EUR"}, "spend_cap.amount"),
        ({"amount": -5, "currency": "EUR"}, "spend_cap.amount"),
        ({"amount": 5, "currency": "euro"}, "spend_cap.currency"),
        ({"amount": 5}, "spend_cap.currency"),
        ({"amount": 5, "currency": "EUR", "limit": 3}, "spend_cap.limit"),
    ],
)
def test_a_bad_spend_cap_is_refused_by_its_field(cap: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        brief_and_config({**BRIEF, "spend_cap": cap}, "brief.yaml")
    assert any(p.startswith(f"{field}:") for p in err.value.problems), err.value.problems


def test_parse_spend_cap() -> None:
    assert parse_spend_cap("500 USD", "--spend-cap") == SpendCap(amount=500, currency="USD")
    assert parse_spend_cap("eur 12.5", "--spend-cap") == SpendCap(amount=12.5, currency="EUR")
    assert parse_spend_cap("7GBP", "--spend-cap").currency == "GBP"
    for bad in ("500", "USD", "-5 USD", "5 dollars", "0 USD"):
        with pytest.raises(InputError) as err:
            parse_spend_cap(bad, "--spend-cap")
        assert err.value.source == "--spend-cap"


def test_a_cap_in_another_currency_is_refused_naming_the_field() -> None:
    check_cap_currency(None, "USD", "brief", "spend_cap.currency")
    check_cap_currency(SpendCap(amount=1, currency="USD"), "USD", "brief", "spend_cap.currency")
    with pytest.raises(InputError) as err:
        check_cap_currency(SpendCap(amount=1, currency="EUR"), "USD", "brief", "spend_cap.currency")
    assert err.value.problems[0].startswith("spend_cap.currency: EUR is not")
    assert "FACELOOP_COST_CURRENCY" in err.value.problems[0]


def test_measure_reads_the_time_so_far_inside_the_block_and_the_total_after() -> None:
    with measure() as watch:
        sum(i * i for i in range(200_000))
        inside = watch.cpu_s
        assert inside > 0 and watch.wall_s > 0
    after = watch.cpu_s
    assert after >= inside and watch.cpu_s == after  # stopped: it no longer moves
