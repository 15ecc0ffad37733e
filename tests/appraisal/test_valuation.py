"""Valuation arithmetic, the tiered LTV maximum and the policy rules, with exact Decimals."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from touchstone.appraisal.valuation import (
    FLAG_INCONCLUSIVE,
    FLAG_KARAT_NOT_ACCEPTED,
    FLAG_UNTESTED,
    RULE_COIN_WEIGHT,
    RULE_JEWELLERY_WEIGHT,
    RULE_KARAT_ACCEPTED,
    RULE_LTV_TIER,
    RULE_REQUESTED_WITHIN_ELIGIBILITY,
    GoldRates,
    ItemForValuation,
    LendingPolicy,
    LtvTier,
    RuleCheck,
    Valuation,
    assess,
    eligible_max_loan,
    format_inr,
    net_weight,
)

D = Decimal
RATES = GoldRates(per_gram_24k=D("7200.00"))
POLICY = LendingPolicy()


def item(
    karat: str | None = "22K",
    *,
    item_type: str = "chain",
    gross: str = "10.000",
    deduction: str = "0.000",
    item_id: str = "i1",
) -> ItemForValuation:
    return ItemForValuation(
        item_id=item_id,
        item_type=item_type,
        count=1,
        gross_weight_g=D(gross),
        deduction_g=D(deduction),
        karat=karat,
    )


def check(valuation: Valuation, rule: str) -> RuleCheck:
    (found,) = [c for c in valuation.checks if c.rule == rule]
    return found


@pytest.mark.parametrize(
    ("karat", "rate", "value"),
    [
        ("24K", "7200.00", "72000.00"),
        ("22K", "6600.00", "66000.00"),
        ("18K", "5400.00", "54000.00"),
    ],
)
def test_value_is_net_weight_times_karat_fraction_of_the_24k_rate(
    karat: str, rate: str, value: str
) -> None:
    (valued,) = assess([item(karat)], RATES, POLICY, None).items
    assert valued.rate_per_g == D(rate)
    assert valued.value == D(value)
    assert valued.flags == ()


def test_derived_rate_and_value_round_half_up_at_the_documented_points() -> None:
    # 6123.45 x 22/24 = 5613.1625 -> 5613.16; 12.345 g x 5613.16 = 69294.4602 -> 69294.46
    rates = GoldRates(per_gram_24k=D("6123.45"))
    (valued,) = assess([item("22K", gross="12.3454")], rates, POLICY, None).items
    assert valued.gross_weight_g == D("12.345")
    assert valued.rate_per_g == D("5613.16")
    assert valued.value == D("69294.46")
    # 18K: 6123.45 x 0.75 = 4592.5875 -> 4592.59 (half up); 1.001 g -> 4597.18 (4597.182...)
    (valued,) = assess([item("18K", gross="1.001")], rates, POLICY, None).items
    assert valued.rate_per_g == D("4592.59")
    assert valued.value == D("4597.18")


def test_quoted_karat_rate_overrides_the_fraction() -> None:
    rates = GoldRates(per_gram_24k=D("7200.00"), per_karat={"22K": D("6650.00")})
    valuation = assess([item("22K"), item("18K", item_id="i2")], rates, POLICY, None)
    assert [v.rate_per_g for v in valuation.items] == [D("6650.00"), D("5400.00")]
    assert valuation.total_value == D("120500.00")


def test_purity_strenum_is_accepted_as_karat() -> None:
    class Karat(StrEnum):
        K22 = "22K"

    (valued,) = assess([item(Karat.K22)], RATES, POLICY, None).items
    assert valued.karat == "22K"
    assert valued.value == D("66000.00")


def test_totals_add_the_rounded_item_figures() -> None:
    items = [
        item("22K", gross="20.500", deduction="0.750", item_id="a"),
        item("24K", item_type="coin", gross="8.000", item_id="b"),
    ]
    valuation = assess(items, RATES, POLICY, None)
    assert valuation.total_gross_weight_g == D("28.500")
    assert valuation.total_net_weight_g == D("27.750")
    # 19.750 x 6600 = 130350.00; 8 x 7200 = 57600.00
    assert valuation.total_value == D("187950.00")
    assert valuation.eligible_value == D("187950.00")
    assert valuation.eligible_max_loan == D("159757.50")
    assert valuation.ltv_cap == D("0.85")
    assert valuation.all_checks_passed


@pytest.mark.parametrize(
    ("gross", "deduction", "message"),
    [
        ("0", "0", "gross weight must be positive"),
        ("-1", "0", "gross weight must be positive"),
        ("5", "-0.1", "cannot be negative"),
        ("5", "5", "must be less than the gross weight"),
        ("5", "6", "must be less than the gross weight"),
        ("0.0004", "0", "gross weight must be positive"),
    ],
)
def test_invalid_net_weight_is_refused(gross: str, deduction: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        net_weight(D(gross), D(deduction))
    with pytest.raises(ValueError, match=f"item i1: .*{message}"):
        assess([item(gross=gross, deduction=deduction)], RATES, POLICY, None)


def test_net_weight_rounds_each_weight_to_the_milligram_before_subtracting() -> None:
    assert net_weight(D("10.0006"), D("0.2504")) == D("9.751")


@pytest.mark.parametrize(
    ("bad_item", "message"),
    [
        (item(item_type="watch"), "unknown item type"),
        (item("14K"), "unknown karat"),
        (
            ItemForValuation("i1", "ring", 0, D(1), D(0), "22K"),
            "count must be at least 1",
        ),
    ],
)
def test_invalid_items_are_refused(bad_item: ItemForValuation, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assess([bad_item], RATES, POLICY, None)


@pytest.mark.parametrize("amount", [D(0), D("-1")])
def test_requested_amount_must_be_positive(amount: Decimal) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        assess([item()], RATES, POLICY, amount)


def test_an_appraisal_needs_items() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        assess([], RATES, POLICY, None)


@pytest.mark.parametrize(
    ("karat", "flag"), [("inconclusive", FLAG_INCONCLUSIVE), (None, FLAG_UNTESTED)]
)
def test_unestablished_purity_is_valued_zero_flagged_and_fails_the_karat_rule(
    karat: str | None, flag: str
) -> None:
    valuation = assess(
        [item("22K", item_id="good"), item(karat, item_id="bad")], RATES, POLICY, None
    )
    bad = valuation.items[1]
    assert bad.value == D("0.00")
    assert bad.rate_per_g is None
    assert bad.flags == (flag,)
    assert not bad.accepted
    assert valuation.total_value == D("66000.00")
    assert valuation.total_net_weight_g == D("20.000")
    karat_checks = [c for c in valuation.checks if c.rule == RULE_KARAT_ACCEPTED]
    assert [c.passed for c in karat_checks] == [True, False]
    assert "valued at zero" in karat_checks[1].detail
    assert not valuation.all_checks_passed


def test_karat_not_accepted_keeps_market_value_but_not_loan_value() -> None:
    coin_18k = item("18K", item_type="coin", gross="10.000", item_id="coin")
    valuation = assess([item("22K"), coin_18k], RATES, POLICY, None)
    coin = valuation.items[1]
    assert coin.value == D("54000.00")
    assert coin.flags == (FLAG_KARAT_NOT_ACCEPTED,)
    assert valuation.total_value == D("120000.00")
    assert valuation.eligible_value == D("66000.00")
    assert valuation.eligible_max_loan == D("56100.00")
    failed = [c for c in valuation.checks if not c.passed]
    assert failed == [
        RuleCheck(
            RULE_KARAT_ACCEPTED, False, "item coin: 18K coin not accepted (accepted: 22K, 24K)"
        )
    ]


def test_accepted_karats_are_a_setting() -> None:
    policy = LendingPolicy.from_mapping({"jewellery_karats": ["22K", "24K"], "coin_karats": []})
    valuation = assess(
        [item("18K"), item("24K", item_type="coin", item_id="c")], RATES, policy, None
    )
    assert [c.passed for c in valuation.checks if c.rule == RULE_KARAT_ACCEPTED] == [False, False]
    assert "(accepted: none)" in valuation.checks[1].detail
    assert valuation.eligible_max_loan == D("0.00")


def test_coin_limit_counts_coins_separately_by_gross_weight() -> None:
    coins = [
        item("24K", item_type="coin", gross="30.000", item_id="c1"),
        item("22K", item_type="coin", gross="20.001", deduction="1", item_id="c2"),
    ]
    valuation = assess([*coins, item("22K", gross="900")], RATES, POLICY, None)
    coin_check = check(valuation, RULE_COIN_WEIGHT)
    assert not coin_check.passed
    assert coin_check.detail == "coins 50.001 g gross against a limit of 50 g per borrower"
    assert check(valuation, RULE_JEWELLERY_WEIGHT).passed


def test_coin_limit_is_inclusive_and_counts_prior_pledges() -> None:
    coins = [item("24K", item_type="coin", gross="50.000")]
    assert check(assess(coins, RATES, POLICY, None), RULE_COIN_WEIGHT).passed
    valuation = assess(coins, RATES, POLICY, None, prior_coin_weight_g=D("0.001"))
    assert not check(valuation, RULE_COIN_WEIGHT).passed


def test_jewellery_limit_includes_weight_already_pledged() -> None:
    chain = [item("22K", gross="600")]
    assert check(assess(chain, RATES, POLICY, None), RULE_JEWELLERY_WEIGHT).passed
    valuation = assess(chain, RATES, POLICY, None, prior_jewellery_weight_g=D("400.001"))
    jewellery = check(valuation, RULE_JEWELLERY_WEIGHT)
    assert not jewellery.passed
    assert "1000.001 g" in jewellery.detail


@pytest.mark.parametrize(
    ("value", "maximum"),
    [
        ("100000.00", "85000.00"),  # tier 1: 85%
        ("294117.64", "249999.99"),  # 85% just under the tier-1 limit, rounded down
        ("300000.00", "250000.00"),  # 85% would be 2,55,000 (tier 2, 80% = 2,40,000)
        ("312500.00", "250000.00"),  # 80% is exactly 2,50,000, which is tier 1
        ("312500.02", "250000.01"),  # 80% just crosses into tier 2
        ("625000.00", "500000.00"),  # 80% exactly at the tier-2 limit
        ("666666.67", "500000.00"),  # 75% = 5,00,000.0025 is above 5 lakh, tier 3
        ("700000.00", "525000.00"),  # tier 3: 75%
        ("0.00", "0.00"),
    ],
)
def test_eligible_maximum_is_the_largest_amount_within_its_own_tier(
    value: str, maximum: str
) -> None:
    assert eligible_max_loan(D(value), POLICY) == D(maximum)


def test_eligible_maximum_handles_caps_that_rise_with_the_amount() -> None:
    policy = LendingPolicy(ltv_tiers=(LtvTier(D(100), D("0.5")), LtvTier(None, D("0.9"))))
    # 90% of 100 is not above the 100 where the 90% tier starts: the 50% tier applies
    assert eligible_max_loan(D(100), policy) == D("50.00")
    assert eligible_max_loan(D(150), policy) == D("135.00")


def _requesting(amount: str) -> Valuation:
    # 24K, 40 g at 7,200 = 2,88,000: 85% = 2,44,800; 80% = 2,30,400 (tier 2 impossible)
    return assess([item("24K", gross="40")], RATES, POLICY, D(amount))


def test_request_of_exactly_two_and_a_half_lakh_is_in_the_85_percent_tier() -> None:
    valuation = assess([item("24K", gross="50")], RATES, POLICY, D("250000.00"))
    # value 3,60,000: 85% = 3,06,000 (tier 1 caps the amount at 2,50,000)
    tier = check(valuation, RULE_LTV_TIER)
    assert tier.passed
    assert valuation.ltv_cap == D("0.85")
    assert "tier up to ₹2,50,000.00: cap 85%" in tier.detail
    assert check(valuation, RULE_REQUESTED_WITHIN_ELIGIBILITY).passed


def test_request_just_above_two_and_a_half_lakh_is_in_the_80_percent_tier() -> None:
    valuation = assess([item("24K", gross="50")], RATES, POLICY, D("250000.01"))
    tier = check(valuation, RULE_LTV_TIER)
    # 80% of 3,60,000 = 2,88,000 allows it, but the tiered maximum is 2,88,000 too
    assert tier.passed
    assert valuation.ltv_cap == D("0.80")
    assert "tier up to ₹5,00,000.00: cap 80%" in tier.detail
    assert valuation.eligible_max_loan == D("288000.00")


def test_request_over_the_cap_of_its_tier_fails_both_rules() -> None:
    valuation = _requesting("244800.01")
    assert valuation.ltv_cap == D("0.85")
    assert not check(valuation, RULE_LTV_TIER).passed
    within = check(valuation, RULE_REQUESTED_WITHIN_ELIGIBILITY)
    assert not within.passed
    assert within.detail == ("requested ₹2,44,800.01 against an eligible maximum of ₹2,44,800.00")
    assert _requesting("244800.00").all_checks_passed


def test_request_in_a_higher_tier_is_judged_by_that_tiers_cap() -> None:
    valuation = _requesting("250000.01")
    assert valuation.ltv_cap == D("0.80")
    tier = check(valuation, RULE_LTV_TIER)
    assert not tier.passed
    assert tier.detail.endswith("cap 80% of ₹2,88,000.00 = ₹2,30,400.00")


def test_without_a_request_the_cap_is_that_of_the_maximum() -> None:
    valuation = assess([item("24K", gross="100")], RATES, POLICY, None)
    assert valuation.eligible_max_loan == D("540000.00")
    assert valuation.ltv_cap == D("0.75")
    assert check(valuation, RULE_LTV_TIER).passed
    assert RULE_REQUESTED_WITHIN_ELIGIBILITY not in {c.rule for c in valuation.checks}


def test_policy_round_trips_through_its_mapping() -> None:
    policy = LendingPolicy(
        ltv_tiers=(LtvTier(D(300_000), D("0.8")), LtvTier(None, D("0.7"))),
        max_jewellery_weight_g=D(500),
        coin_karats=frozenset({"24K"}),
    )
    assert LendingPolicy.from_mapping(policy.to_mapping()) == policy
    assert LendingPolicy.from_mapping({}) == LendingPolicy()
    assert POLICY.to_mapping()["ltv_tiers"][0] == {"up_to": "250000", "max_ltv": "0.85"}


def test_policy_accepts_json_numbers() -> None:
    policy = LendingPolicy.from_mapping(
        {"ltv_tiers": [{"up_to": 100000, "max_ltv": 0.9}, {"up_to": None, "max_ltv": "0.7"}]}
    )
    assert policy.ltv_tiers == (LtvTier(D(100000), D("0.9")), LtvTier(None, D("0.7")))


def _tiers(*tiers: tuple[Any, Any]) -> dict[str, Any]:
    return {"ltv_tiers": [{"up_to": up_to, "max_ltv": cap} for up_to, cap in tiers]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_ltv": "0.9"}, "unknown lending policy setting"),
        (_tiers((None, "-0.1")), "max_ltv must be above 0 and at most 1"),
        (_tiers((None, "0")), "max_ltv must be above 0 and at most 1"),
        (_tiers((None, "1.01")), "max_ltv must be above 0 and at most 1"),
        (_tiers(("100", "0.8"), ("50", "0.7"), (None, "0.6")), "positive and ascending"),
        (_tiers(("-5", "0.8"), (None, "0.6")), "positive and ascending"),
        (_tiers(("100", "0.8")), "last ltv tier must be unbounded"),
        (_tiers((None, "0.8"), ("100", "0.7")), "only the last tier may be unbounded"),
        ({"ltv_tiers": []}, "at least one tier"),
        ({"ltv_tiers": "0.85"}, "must be a list"),
        ({"ltv_tiers": [{"max_ltv": "0.8"}]}, "exactly the keys"),
        ({"ltv_tiers": [{"up_to": None, "max_ltv": "high"}]}, "must be a number"),
        ({"ltv_tiers": [{"up_to": None, "max_ltv": True}]}, "must be a number"),
        ({"ltv_tiers": [{"up_to": None, "max_ltv": "NaN"}]}, "finite"),
        ({"max_coin_weight_g": -50}, "max_coin_weight_g must be positive"),
        ({"max_jewellery_weight_g": "0"}, "max_jewellery_weight_g must be positive"),
        ({"coin_karats": ["21K"]}, "unknown karat"),
        ({"jewellery_karats": ["inconclusive"]}, "unknown karat"),
        ({"jewellery_karats": [22]}, "list of karat strings"),
    ],
)
def test_policy_from_mapping_rejects_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LendingPolicy.from_mapping(settings)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_gram_24k": D(0)}, "24K gold rate per gram must be positive"),
        ({"per_gram_24k": D(1), "per_karat": {"22K": D(-1)}}, "22K gold rate"),
        ({"per_gram_24k": D(1), "per_karat": {"inconclusive": D(1)}}, "no gold rate"),
    ],
)
def test_gold_rates_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GoldRates(**kwargs)


def test_indian_grouping_of_rupees() -> None:
    assert format_inr(D("250000")) == "2,50,000.00"
    assert format_inr(D("12345678.505")) == "1,23,45,678.51"
    assert format_inr(D("999.5")) == "999.50"
    assert format_inr(D("-1000")) == "-1,000.00"
