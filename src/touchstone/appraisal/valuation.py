"""Gold valuation and RBI-style loan-eligibility checks, as pure functions over Decimals.

Conventions (the certificate and the API show these numbers, so they are fixed here):

* Rates are rupees per gram. ``GoldRates.per_gram_24k`` is the price of one gram of 24K
  (fine) gold. An item of karat K is priced at ``per_gram_24k * K / 24`` (18K = 0.75,
  22K = 0.91666..., 24K = 1), unless the org's per-karat table quotes K directly, which
  then wins. The karat fraction is exact (22/24), never the hallmark fineness 916 or a
  rounded 0.9167, so the same inputs always give the same rupee.
* Rounding happens at three documented points only, always ROUND_HALF_UP:
  weights are rounded to 3 dp (the milligram a balance shows) on entry; a derived karat
  rate is rounded to 2 dp (the paisa a rate board shows); an item's value
  (net weight x karat rate) is rounded to 2 dp. Totals are sums of the rounded figures, so
  the certificate's table adds up. The eligible maximum loan is the one exception: it is
  rounded *down* to the paisa, because rounding up could lend half a paisa over the cap.
* Items whose purity is ``inconclusive`` or untested (karat ``None``) are valued at zero
  and flagged; items whose karat the policy does not accept keep their market value on the
  certificate but are left out of the value a loan is based on.
* Invalid input (weights, counts, karats, a non-positive requested amount) raises
  ``ValueError`` with a message meant for the user; the API maps it to a 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

Karat = str
"""One of ``KARATS``; plain ``str`` so the ``Karat`` StrEnum of ``purity/pipeline.py`` fits too."""

KARAT_18: Final = "18K"
KARAT_22: Final = "22K"
KARAT_24: Final = "24K"
INCONCLUSIVE: Final = "inconclusive"
TESTED_KARATS: Final = (KARAT_18, KARAT_22, KARAT_24)
KARATS: Final = (*TESTED_KARATS, INCONCLUSIVE)

ITEM_TYPES: Final = ("ring", "chain", "bangle", "coin", "necklace", "earring", "other")
COIN: Final = "coin"

FLAG_INCONCLUSIVE: Final = "purity_inconclusive"
FLAG_UNTESTED: Final = "purity_untested"
FLAG_KARAT_NOT_ACCEPTED: Final = "karat_not_accepted"

RULE_LTV_TIER: Final = "ltv_tier"
RULE_JEWELLERY_WEIGHT: Final = "jewellery_weight_limit"
RULE_COIN_WEIGHT: Final = "coin_weight_limit"
RULE_KARAT_ACCEPTED: Final = "karat_accepted"
RULE_REQUESTED_WITHIN_ELIGIBILITY: Final = "requested_within_eligibility"

_GRAMS = Decimal("0.001")
_PAISA = Decimal("0.01")
_ZERO = Decimal(0)
_KARAT_NUMBER: Final = {KARAT_18: 18, KARAT_22: 22, KARAT_24: 24}


def round_grams(value: Decimal) -> Decimal:
    """Round a weight to the milligram, the resolution the appraiser's balance shows."""
    return value.quantize(_GRAMS, rounding=ROUND_HALF_UP)


def round_money(value: Decimal) -> Decimal:
    """Round rupees to the paisa."""
    return value.quantize(_PAISA, rounding=ROUND_HALF_UP)


def format_inr(amount: Decimal) -> str:
    """Rupees with Indian digit grouping (2,50,000.00), as Indian customers read amounts."""
    sign = "-" if amount < 0 else ""
    whole, _, paise = f"{abs(round_money(amount)):.2f}".partition(".")
    head, tail = whole[:-3], whole[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return sign + ",".join([*groups, tail]) + "." + paise


@dataclass(frozen=True, slots=True)
class GoldRates:
    """The org's gold rates that apply to this appraisal (the integrator keeps the history).

    ``per_gram_24k`` prices fine gold; ``per_karat`` optionally quotes a karat directly
    (e.g. a 22K board rate) and then overrides ``per_gram_24k * K / 24`` for that karat.
    """

    per_gram_24k: Decimal
    per_karat: Mapping[Karat, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.per_gram_24k > 0:
            raise ValueError("the 24K gold rate per gram must be positive")
        for karat, rate in self.per_karat.items():
            if karat not in TESTED_KARATS:
                raise ValueError(f"no gold rate can be quoted for karat {karat!r}")
            if not rate > 0:
                raise ValueError(f"the {karat} gold rate per gram must be positive")
        object.__setattr__(self, "per_karat", MappingProxyType(dict(self.per_karat)))

    def rate_for(self, karat: Karat) -> Decimal:
        """Rupees per gram of an item of ``karat``, rounded to the paisa when derived."""
        quoted = self.per_karat.get(karat)
        if quoted is not None:
            return quoted
        return round_money(self.per_gram_24k * _KARAT_NUMBER[karat] / 24)


@dataclass(frozen=True, slots=True)
class LtvTier:
    """Loans up to ``up_to`` rupees (no upper bound when ``None``) may be ``max_ltv`` of value."""

    up_to: Decimal | None
    max_ltv: Decimal


DEFAULT_LTV_TIERS: Final = (
    LtvTier(Decimal(250_000), Decimal("0.85")),
    LtvTier(Decimal(500_000), Decimal("0.80")),
    LtvTier(None, Decimal("0.75")),
)

_POLICY_KEYS: Final = frozenset(
    {"ltv_tiers", "max_jewellery_weight_g", "max_coin_weight_g", "jewellery_karats", "coin_karats"}
)


@dataclass(frozen=True, slots=True)
class LendingPolicy:
    """An org's gold-loan lending rules, stored as JSON in the org's settings.

    Defaults modelled on the Reserve Bank of India's 2025 directions on lending against
    gold collateral, configurable per org; they are a starting point, not legal advice:

    * loan-to-value cap by loan amount: up to Rs 2.5 lakh 85%, above Rs 2.5 lakh up to
      Rs 5 lakh 80%, above Rs 5 lakh 75%;
    * at most 1 kg of jewellery and 50 g of coins per borrower, counted separately and by
      gross weight (the ornaments as pledged, which is never less than the gold in them);
    * jewellery of 18K and above; coins only of 22K or 24K.
    """

    ltv_tiers: tuple[LtvTier, ...] = DEFAULT_LTV_TIERS
    max_jewellery_weight_g: Decimal = Decimal(1000)
    max_coin_weight_g: Decimal = Decimal(50)
    jewellery_karats: frozenset[Karat] = frozenset(TESTED_KARATS)
    coin_karats: frozenset[Karat] = frozenset({KARAT_22, KARAT_24})

    def __post_init__(self) -> None:
        if not self.ltv_tiers:
            raise ValueError("ltv_tiers needs at least one tier")
        previous_limit = _ZERO
        for position, tier in enumerate(self.ltv_tiers, start=1):
            is_last = position == len(self.ltv_tiers)
            if not _ZERO < tier.max_ltv <= 1:
                raise ValueError(f"ltv tier {position}: max_ltv must be above 0 and at most 1")
            if tier.up_to is None:
                if not is_last:
                    raise ValueError(f"ltv tier {position}: only the last tier may be unbounded")
                continue
            if is_last:
                raise ValueError("the last ltv tier must be unbounded (up_to null)")
            if tier.up_to <= previous_limit:
                raise ValueError(f"ltv tier {position}: up_to must be positive and ascending")
            previous_limit = tier.up_to
        for name in ("max_jewellery_weight_g", "max_coin_weight_g"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("jewellery_karats", "coin_karats"):
            unknown = set(getattr(self, name)) - set(TESTED_KARATS)
            if unknown:
                raise ValueError(f"{name}: unknown karat(s) {sorted(unknown)}")

    def tier_for(self, amount: Decimal) -> LtvTier:
        """The tier a loan of ``amount`` falls in (tier limits are inclusive)."""
        for tier in self.ltv_tiers:
            if tier.up_to is None or amount <= tier.up_to:
                return tier
        raise AssertionError("validation guarantees an unbounded last tier")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> LendingPolicy:
        """Parse the org's stored settings; keys left out keep their defaults.

        Numbers may be JSON numbers or strings; unknown keys are refused so that a typo
        cannot silently leave a default in force.
        """
        unknown = set(settings) - _POLICY_KEYS
        if unknown:
            raise ValueError(f"unknown lending policy setting(s): {sorted(unknown)}")
        defaults = cls()
        tiers = defaults.ltv_tiers
        if "ltv_tiers" in settings:
            tiers = tuple(_parse_tier(raw) for raw in _as_list(settings["ltv_tiers"], "ltv_tiers"))
        return cls(
            ltv_tiers=tiers,
            max_jewellery_weight_g=_decimal_setting(
                settings, "max_jewellery_weight_g", defaults.max_jewellery_weight_g
            ),
            max_coin_weight_g=_decimal_setting(
                settings, "max_coin_weight_g", defaults.max_coin_weight_g
            ),
            jewellery_karats=_karats_setting(settings, "jewellery_karats", defaults),
            coin_karats=_karats_setting(settings, "coin_karats", defaults),
        )

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready settings (Decimals as strings, so no float ever touches a cap)."""
        return {
            "ltv_tiers": [
                {
                    "up_to": None if tier.up_to is None else str(tier.up_to),
                    "max_ltv": str(tier.max_ltv),
                }
                for tier in self.ltv_tiers
            ],
            "max_jewellery_weight_g": str(self.max_jewellery_weight_g),
            "max_coin_weight_g": str(self.max_coin_weight_g),
            "jewellery_karats": sorted(self.jewellery_karats),
            "coin_karats": sorted(self.coin_karats),
        }


def _as_list(raw: Any, name: str) -> list[Any]:
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{name} must be a list")
    return list(raw)


def _to_decimal(raw: Any, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise ValueError(f"{name} must be a number")
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number")
    return number


def _parse_tier(raw: Any) -> LtvTier:
    if not isinstance(raw, Mapping) or set(raw) != {"up_to", "max_ltv"}:
        raise ValueError("each ltv tier needs exactly the keys up_to and max_ltv")
    up_to = None if raw["up_to"] is None else _to_decimal(raw["up_to"], "up_to")
    return LtvTier(up_to=up_to, max_ltv=_to_decimal(raw["max_ltv"], "max_ltv"))


def _decimal_setting(settings: Mapping[str, Any], name: str, default: Decimal) -> Decimal:
    return _to_decimal(settings[name], name) if name in settings else default


def _karats_setting(
    settings: Mapping[str, Any], name: str, defaults: LendingPolicy
) -> frozenset[Karat]:
    if name not in settings:
        return frozenset(getattr(defaults, name))
    karats = _as_list(settings[name], name)
    if not all(isinstance(karat, str) for karat in karats):
        raise ValueError(f"{name} must be a list of karat strings")
    return frozenset(karats)


@dataclass(frozen=True, slots=True)
class ItemForValuation:
    """One line of the pledge as weighed: ``gross_weight_g`` is for all ``count`` pieces."""

    item_id: str
    item_type: str
    count: int
    gross_weight_g: Decimal
    deduction_g: Decimal
    karat: Karat | None


@dataclass(frozen=True, slots=True)
class ItemValuation:
    """An item's weights, the rate applied and its value, with why it may not count."""

    item_id: str
    item_type: str
    count: int
    gross_weight_g: Decimal
    deduction_g: Decimal
    net_weight_g: Decimal
    karat: Karat | None
    rate_per_g: Decimal | None
    value: Decimal
    accepted: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleCheck:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Valuation:
    """The outcome of ``assess``: what the pledge is worth and what may be lent on it.

    ``total_value`` is the market value of every tested item; ``eligible_value`` only of
    the items the policy accepts, and it is what ``eligible_max_loan`` is based on.
    ``ltv_cap`` is the cap of the tier the requested amount falls in, or of the tier of
    the eligible maximum when no amount was requested.
    """

    items: tuple[ItemValuation, ...]
    total_gross_weight_g: Decimal
    total_net_weight_g: Decimal
    total_value: Decimal
    eligible_value: Decimal
    ltv_cap: Decimal
    eligible_max_loan: Decimal
    requested_amount: Decimal | None
    checks: tuple[RuleCheck, ...]

    @property
    def all_checks_passed(self) -> bool:
        return all(check.passed for check in self.checks)


def net_weight(gross_weight_g: Decimal, deduction_g: Decimal) -> Decimal:
    """Gold weight after stones and dust, refusing weights no balance could show."""
    gross = round_grams(gross_weight_g)
    deduction = round_grams(deduction_g)
    if gross <= 0:
        raise ValueError(f"gross weight must be positive, got {gross} g")
    if deduction < 0:
        raise ValueError(f"stone/dust deduction cannot be negative, got {deduction} g")
    if deduction >= gross:
        raise ValueError(
            f"stone/dust deduction ({deduction} g) must be less than the gross weight "
            f"({gross} g): nothing would be left to value"
        )
    return gross - deduction


def eligible_max_loan(value: Decimal, policy: LendingPolicy) -> Decimal:
    """The largest amount A (in paise) with A <= value x cap(tier of A).

    The cap depends on the amount, so ``value x cap`` is not the answer by itself: with a
    value of Rs 3,00,000, 85% is Rs 2,55,000, but that amount is in the 80% tier, where
    only Rs 2,40,000 is allowed, and that is below the Rs 2,50,000 the 85% tier allows.
    Within one tier the cap is constant, so the best amount in tier (low, high] is
    min(high, value x cap) when that exceeds low; the answer is the best over all tiers
    (Rs 2,50,000 here).
    Checking every tier keeps this right even for caps that do not fall with the amount.
    """
    best = _ZERO
    low = _ZERO
    for tier in policy.ltv_tiers:
        allowed = (value * tier.max_ltv).quantize(_PAISA, rounding=ROUND_DOWN)
        candidate = allowed if tier.up_to is None else min(tier.up_to, allowed)
        if candidate > low:
            best = max(best, candidate)
        if tier.up_to is not None:
            low = tier.up_to
    return best.quantize(_PAISA)


def _validate_item(item: ItemForValuation) -> None:
    if item.item_type not in ITEM_TYPES:
        raise ValueError(f"item {item.item_id}: unknown item type {item.item_type!r}")
    if item.count < 1:
        raise ValueError(f"item {item.item_id}: count must be at least 1")
    if item.karat is not None and item.karat not in KARATS:
        raise ValueError(f"item {item.item_id}: unknown karat {item.karat!r}")


def _value_item(item: ItemForValuation, rates: GoldRates, policy: LendingPolicy) -> ItemValuation:
    _validate_item(item)
    try:
        net = net_weight(item.gross_weight_g, item.deduction_g)
    except ValueError as error:
        raise ValueError(f"item {item.item_id}: {error}") from None
    karat = None if item.karat is None else str(item.karat)
    flags: list[str] = []
    rate: Decimal | None = None
    value = Decimal("0.00")
    if karat is None:
        flags.append(FLAG_UNTESTED)
    elif karat == INCONCLUSIVE:
        flags.append(FLAG_INCONCLUSIVE)
    else:
        rate = rates.rate_for(karat)
        value = round_money(net * rate)
    accepted_karats = policy.coin_karats if item.item_type == COIN else policy.jewellery_karats
    accepted = karat in accepted_karats
    if rate is not None and not accepted:
        flags.append(FLAG_KARAT_NOT_ACCEPTED)
    return ItemValuation(
        item_id=item.item_id,
        item_type=item.item_type,
        count=item.count,
        gross_weight_g=round_grams(item.gross_weight_g),
        deduction_g=round_grams(item.deduction_g),
        net_weight_g=net,
        karat=karat,
        rate_per_g=rate,
        value=value,
        accepted=accepted,
        flags=tuple(flags),
    )


def _karat_check(item: ItemValuation, policy: LendingPolicy) -> RuleCheck:
    kind = "coin" if item.item_type == COIN else "jewellery"
    allowed = policy.coin_karats if item.item_type == COIN else policy.jewellery_karats
    allowed_text = ", ".join(sorted(allowed)) or "none"
    if item.karat is None or item.karat == INCONCLUSIVE:
        outcome = "untested" if item.karat is None else "inconclusive"
        detail = f"item {item.item_id}: purity {outcome}, valued at zero"
    else:
        verdict = "accepted" if item.accepted else "not accepted"
        detail = f"item {item.item_id}: {item.karat} {kind} {verdict} (accepted: {allowed_text})"
    return RuleCheck(RULE_KARAT_ACCEPTED, item.accepted, detail)


def _weight_check(rule: str, label: str, weight: Decimal, limit: Decimal) -> RuleCheck:
    return RuleCheck(
        rule,
        weight <= limit,
        f"{label} {weight} g gross against a limit of {limit} g per borrower",
    )


def _tier_text(tier: LtvTier) -> str:
    bound = "no upper limit" if tier.up_to is None else f"up to ₹{format_inr(tier.up_to)}"
    return f"tier {bound}: cap {format((tier.max_ltv * 100).normalize(), 'f')}%"


def assess(
    items: Sequence[ItemForValuation],
    rates: GoldRates,
    policy: LendingPolicy,
    requested_amount: Decimal | None,
    *,
    prior_jewellery_weight_g: Decimal = _ZERO,
    prior_coin_weight_g: Decimal = _ZERO,
) -> Valuation:
    """Value the pledge and check it against the org's policy.

    Every rule is reported, passed or failed, so the manager sees why an appraisal cannot
    be approved. The weight limits are per borrower: pass the gross weights the borrower
    already has pledged in other loans as ``prior_*`` so the limit covers them too.
    """
    if not items:
        raise ValueError("an appraisal needs at least one item")
    if requested_amount is not None and not requested_amount > 0:
        raise ValueError("the requested loan amount must be positive")
    if prior_jewellery_weight_g < 0 or prior_coin_weight_g < 0:
        raise ValueError("weights already pledged cannot be negative")
    valued = tuple(_value_item(item, rates, policy) for item in items)

    eligible_value = sum((item.value for item in valued if item.accepted), _ZERO)
    maximum = eligible_max_loan(eligible_value, policy)
    tier = policy.tier_for(requested_amount if requested_amount is not None else maximum)

    jewellery_weight = prior_jewellery_weight_g + sum(
        (item.gross_weight_g for item in valued if item.item_type != COIN), _ZERO
    )
    coin_weight = prior_coin_weight_g + sum(
        (item.gross_weight_g for item in valued if item.item_type == COIN), _ZERO
    )
    checks = [
        *(_karat_check(item, policy) for item in valued),
        _weight_check(
            RULE_JEWELLERY_WEIGHT, "jewellery", jewellery_weight, policy.max_jewellery_weight_g
        ),
        _weight_check(RULE_COIN_WEIGHT, "coins", coin_weight, policy.max_coin_weight_g),
    ]
    if requested_amount is None:
        checks.append(
            RuleCheck(
                RULE_LTV_TIER,
                True,
                f"no amount requested; eligible maximum ₹{format_inr(maximum)} "
                f"is in the {_tier_text(tier)}",
            )
        )
    else:
        allowed = (eligible_value * tier.max_ltv).quantize(_PAISA, rounding=ROUND_DOWN)
        checks.append(
            RuleCheck(
                RULE_LTV_TIER,
                requested_amount <= allowed,
                f"₹{format_inr(requested_amount)} falls in the {_tier_text(tier)} of "
                f"₹{format_inr(eligible_value)} = ₹{format_inr(allowed)}",
            )
        )
        checks.append(
            RuleCheck(
                RULE_REQUESTED_WITHIN_ELIGIBILITY,
                requested_amount <= maximum,
                f"requested ₹{format_inr(requested_amount)} against an eligible maximum "
                f"of ₹{format_inr(maximum)}",
            )
        )
    return Valuation(
        items=valued,
        total_gross_weight_g=sum((item.gross_weight_g for item in valued), _ZERO),
        total_net_weight_g=sum((item.net_weight_g for item in valued), _ZERO),
        total_value=sum((item.value for item in valued), _ZERO),
        eligible_value=eligible_value,
        ltv_cap=tier.max_ltv,
        eligible_max_loan=maximum,
        requested_amount=requested_amount,
        checks=tuple(checks),
    )
