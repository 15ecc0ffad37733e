"""Amount and date parsing: round trips through every printed style, and the year rules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstone.statements.extraction.metadata import name_only, without_numbers
from touchstone.statements.extraction.money import read_figure
from touchstone.statements.extraction.normalise import (
    PartialDate,
    format_amount,
    parse_amount,
    parse_date,
    resolve_year,
)

amounts = st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"), places=2)
STYLES = ("minus", "parens", "crdr", "trailing")


@given(amounts, st.sampled_from(STYLES), st.booleans(), st.sampled_from(["", "£", "$"]))
def test_amount_round_trips_through_every_style(
    value: Decimal, style: str, european: bool, symbol: str
) -> None:
    printed = format_amount(value, european=european, style=style, symbol=symbol)
    parsed = parse_amount(printed)
    assert parsed is not None, printed
    assert parsed.value == value
    assert parsed.currency == {"": None, "£": "GBP", "$": "USD"}[symbol]


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("1,234.56", "1234.56", None),
        ("1.234,56", "1234.56", None),
        ("(123.45)", "-123.45", None),
        ("123.45 DR", "-123.45", None),
        ("123.45CR", "123.45", None),
        ("123.45-", "-123.45", None),
        ("-£1,000.00", "-1000.00", "GBP"),
        ("EUR 12,50", "12.50", "EUR"),
        ("12.00 USD", "12.00", "USD"),
        ("1 234,56", "1234.56", None),
        ("0.07", "0.07", None),
    ],
)
def test_amount_formats(text: str, value: str, currency: str | None) -> None:
    parsed = parse_amount(text)
    assert parsed is not None
    assert (parsed.value, parsed.currency) == (Decimal(value), currency)


@pytest.mark.parametrize(
    "text", ["2025", "12/01/2025", "1,234.5", "1.234", "1,23,4.56", "abc", "12.34.56", "XYZ 1.00"]
)
def test_not_amounts(text: str) -> None:
    assert parse_amount(text) is None


DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%y", "%d %b %Y", "%Y-%m-%d", "%d.%m.%Y", "%b %d, %Y", "%d-%b-%y")


@given(st.dates(dt.date(1971, 1, 1), dt.date(2068, 12, 31)), st.sampled_from(DATE_FORMATS))
def test_date_round_trips_through_common_formats(date: dt.date, fmt: str) -> None:
    parsed = parse_date(date.strftime(fmt))
    assert parsed == PartialDate(date.day, date.month, date.year)


@given(
    st.dates(dt.date(2000, 1, 1), dt.date(2060, 12, 31)),
    st.sampled_from(("%d %b", "%b %d", "%d/%m")),
)
def test_dates_without_a_year_land_inside_the_period(date: dt.date, fmt: str) -> None:
    parsed = parse_date(date.strftime(fmt))
    assert parsed is not None
    assert parsed.year is None
    start, end = date - dt.timedelta(days=40), date + dt.timedelta(days=20)
    assert resolve_year(parsed, start, end, fallback_year=1999) == date


def test_month_first_dates_when_asked() -> None:
    assert parse_date("03/04/2025") == PartialDate(3, 4, 2025)
    assert parse_date("03/04/2025", dayfirst=False) == PartialDate(4, 3, 2025)
    assert parse_date("31/02/2025") is None


def test_year_end_inference() -> None:
    start, end = dt.date(2025, 12, 15), dt.date(2026, 1, 14)
    assert resolve_year(PartialDate(28, 12, None), start, end, 2000) == dt.date(2025, 12, 28)
    assert resolve_year(PartialDate(3, 1, None), start, end, 2000) == dt.date(2026, 1, 3)
    assert resolve_year(PartialDate(3, 1, None), None, None, 2024) == dt.date(2024, 1, 3)


def test_holder_name_stops_at_the_next_label_and_no_full_number_is_kept() -> None:
    assert (
        name_only("MS ANANYA RAO Account No: 0012 3456 7890 1234 Currency: INR") == "MS ANANYA RAO"
    )
    assert name_only("Tom Baker   Sort code 12-34-56") == "Tom Baker"
    assert without_numbers("HDFC Bank 0012 3456 7890 1234") == "HDFC Bank XXXX1234"


@pytest.mark.parametrize(
    ("text", "card", "value"),
    [
        ("1,234.56", False, "1234.56"),
        ("1,234.56 DR", False, "-1234.56"),
        ("232.161,04 H", False, "232161.04"),
        ("1.234,56 S", False, "-1234.56"),
        ("12.00-", False, "-12.00"),
        ("(412.16)", False, "-412.16"),
        ("(412.16)", True, "412.16"),
        ("4.20", True, "-4.20"),
        ("47.24 CR", True, "47.24"),
        ("+ RM 5,123.90", True, "-5123.90"),
        ("- S$ 0.00", True, "0.00"),
        ("12,34,567.50 Cr", False, "1234567.50"),
        ("90,350 CR", False, "90350.0"),
        ("10158.4", False, "10158.4"),
    ],
)
def test_figures_carry_their_marks_into_the_holder_view(text: str, card: bool, value: str) -> None:
    figure = read_figure(text)
    assert figure is not None
    assert figure.signed(card) == Decimal(value)


@pytest.mark.parametrize("text", ["2025", "12345", "Ltd", "-1234", "1.234.56"])
def test_counts_references_and_words_are_not_money(text: str) -> None:
    assert read_figure(text) is None
