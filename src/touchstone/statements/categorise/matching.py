"""Categorisation of statement rows: rules, counterparties and recurring payments.

Pure functions over the domain types, so the API can validate per-org rules with `Rule` and
the job worker can categorise without a database.

Priority: the matching rule with the lowest `priority` wins; ties go to the rule that comes
first in the sequence given. Every default rule has a priority of at least
`DEFAULT_PRIORITY_START` (1000) while a `Rule` defaults to 100, so `org_rules +
DEFAULT_RULES` lets an org's rules beat every default; an org rule given a priority above
1000 slots in between the defaults (e.g. 5000: only when no default rule matched).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import importlib
import itertools
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from touchstone.statements.domain import CategorisedTransaction, Direction, Transaction

UNCATEGORISED = "uncategorised"
DEFAULT_PRIORITY_START = 1000
MAX_PATTERN_LENGTH = 200
MAX_WIDE_REPEATS = 2
WIDE_REPEAT_SPAN = 32
MATCHED_TEXT_LIMIT = 256
MAX_KEYWORDS = 200
MAX_TEXT_LENGTH = 100

# Category names used by DEFAULT_RULES; the workbook's themed sheets select rows by them.
SALARY = "salary"
PENSION_BENEFITS = "pension_benefits"
DIVIDEND = "dividend"
RENTAL_INCOME = "rental_income"
RENT = "rent"
UTILITIES = "utilities"
GROCERIES = "groceries"
FUEL = "fuel"
DINING = "dining"
TRAVEL = "travel"
SUBSCRIPTIONS = "subscriptions"
SHOPPING = "shopping"
INSURANCE = "insurance"
INVESTMENT = "investment"
TAX = "tax"
HEALTHCARE = "healthcare"
EDUCATION = "education"
WALLET = "wallet"
CREDIT_CARD_BILL = "credit_card_bill"
BILL_PAYMENT = "bill_payment"
TRANSFER = "transfer"
CHEQUE = "cheque"
CASH_WITHDRAWAL = "cash_withdrawal"
CASH_DEPOSIT = "cash_deposit"
CARD_PAYMENT = "card_payment"
LOAN_EMI = "loan_emi"
FEES_CHARGES = "fees_charges"
INTEREST = "interest"
REFUND = "refund"
RETURNED = "returned"

# Letters and digits are separate words, so a keyword "POS" also finds "POS1234".
_WORD = re.compile(r"[^\W\d_]+|\d+")
_DIGIT = re.compile(r"\d")
_ZERO_DIGITS = str.maketrans("123456789", "000000000")  # a description's shape
_sre_parser: Any = importlib.import_module("re._parser")  # no public API walks a pattern
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.casefold()))


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_TEXT_LENGTH} characters")
    return value


def _walk_pattern(items: Any, repeated: bool, wide: list[int]) -> None:
    """Reject the shapes that make a backtracking engine blow up: a repeat inside a repeat,
    alternation under a repeat (both exponential) and backreferences; count wide repeats."""
    for op, arg in items:
        name = op.name
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise ValueError("pattern: backreferences are not allowed")
        if name in _REPEATS:
            low, high, body = arg
            if high - low > WIDE_REPEAT_SPAN:  # MAXREPEAT for an open end
                wide[0] += 1
            if repeated and high != low:
                raise ValueError("pattern: a repeat inside a repeat can backtrack forever")
            _walk_pattern(body, repeated or high > 1, wide)
        elif name == "BRANCH":
            if repeated:
                raise ValueError("pattern: alternatives inside a repeat can backtrack forever")
            for alternative in arg[1]:
                _walk_pattern(alternative, repeated, wide)
        elif name == "SUBPATTERN":
            _walk_pattern(arg[3], repeated, wide)
        elif name in ("ASSERT", "ASSERT_NOT"):
            _walk_pattern(arg[1], repeated, wide)
        elif name == "ATOMIC_GROUP":
            _walk_pattern(arg, repeated, wide)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rule's regex (case-insensitive) or say why it is refused.

    Python's `re` has no timeout, so risky shapes are refused up front: at most
    MAX_PATTERN_LENGTH characters, no backreferences, no repeat nested in a repeat and no
    alternation under a repeat (the exponential cases), at most MAX_WIDE_REPEATS repeats of
    unbounded or wide span (the polynomial ones); and only the first MATCHED_TEXT_LIMIT
    characters of a description are searched.
    """
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
    wide = [0]
    _walk_pattern(_sre_parser.parse(pattern), False, wide)
    if wide[0] > MAX_WIDE_REPEATS:
        raise ValueError(f"pattern has more than {MAX_WIDE_REPEATS} open-ended repeats")
    return compiled


def _amount(value: object, what: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{what} must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite amount of at least 0")
    return amount


@dataclass(frozen=True, slots=True)
class Rule:
    """One categorisation rule: every condition given must hold (keywords: any of them).

    Keywords match whole words, case-insensitively, in order ("CHQ RET" finds "chq-ret");
    `pattern` is a regex searched case-insensitively in the description (see
    `compile_pattern` for what is refused); the amount range is inclusive, on the absolute
    amount; `direction` None means either.
    """

    name: str
    category: str
    priority: int = 100
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    direction: Direction | None = None

    def __post_init__(self) -> None:
        _check_text(self.name, "name")
        _check_text(self.category, "category")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError("priority must be an integer")
        if not 0 <= self.priority <= 1_000_000:
            raise ValueError("priority must be between 0 and 1000000")
        if isinstance(self.keywords, str):
            raise ValueError("keywords must be a list of strings")
        object.__setattr__(self, "keywords", tuple(self.keywords))
        if len(self.keywords) > MAX_KEYWORDS:
            raise ValueError(f"at most {MAX_KEYWORDS} keywords")
        for keyword in self.keywords:
            if not _words(_check_text(keyword, "keyword")):
                raise ValueError(f"keyword {keyword!r} has no letters or digits")
        if self.pattern is not None:
            compile_pattern(self.pattern)
        object.__setattr__(self, "min_amount", _amount(self.min_amount, "min_amount"))
        object.__setattr__(self, "max_amount", _amount(self.max_amount, "max_amount"))
        if (
            self.min_amount is not None
            and self.max_amount is not None
            and self.min_amount > self.max_amount
        ):
            raise ValueError("inverted amount range: min_amount is above max_amount")
        if self.direction is not None and not isinstance(self.direction, Direction):
            raise ValueError("direction must be credit, debit or any")
        if not (
            self.keywords
            or self.pattern
            or self.min_amount is not None
            or self.max_amount is not None
            or self.direction
        ):
            raise ValueError("empty rule: give keywords, a pattern, an amount or a direction")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Rule:
        """Build a rule from stored or API JSON; unknown keys are refused, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown rule fields: {', '.join(unknown)}")
        if "name" not in data or "category" not in data:
            raise ValueError("a rule needs a name and a category")
        keywords = data.get("keywords") or ()
        if not isinstance(keywords, list | tuple):
            raise ValueError("keywords must be a list of strings")
        direction = data.get("direction")
        if direction in (None, "any"):
            parsed_direction = None
        elif direction in ("credit", "debit"):
            parsed_direction = Direction(direction)
        else:
            raise ValueError("direction must be credit, debit or any")
        return cls(
            name=data["name"],
            category=data["category"],
            priority=data.get("priority", 100),
            keywords=tuple(keywords),
            pattern=data.get("pattern"),
            min_amount=data.get("min_amount"),
            max_amount=data.get("max_amount"),
            direction=parsed_direction,
        )

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready: amounts as strings so no precision is lost."""
        return {
            "name": self.name,
            "category": self.category,
            "priority": self.priority,
            "keywords": list(self.keywords),
            "pattern": self.pattern,
            "min_amount": None if self.min_amount is None else str(self.min_amount),
            "max_amount": None if self.max_amount is None else str(self.max_amount),
            "direction": "any" if self.direction is None else self.direction.value,
        }


def _default(
    name: str,
    category: str,
    order: int,
    keywords: str = "",
    *,
    pattern: str | None = None,
    direction: Direction | None = None,
) -> Rule:
    return Rule(
        name=name,
        category=category,
        priority=DEFAULT_PRIORITY_START + order,
        keywords=tuple(k.strip() for k in keywords.split("|") if k.strip()),
        pattern=pattern,
        direction=direction,
    )


_CREDIT, _DEBIT = Direction.CREDIT, Direction.DEBIT

# Order matters: specific signals (a return, a fee, a refund) before the merchant, merchants
# before the payment rail (UPI, NEFT, DD...) that carried them.
DEFAULT_RULES: tuple[Rule, ...] = (
    _default(
        "returned item",
        RETURNED,
        0,
        "RTN|RETURNED|BOUNCE|BOUNCED|DISHONOUR|DISHONOURED|UNPAID|INSUFFICIENT FUNDS|"
        "INSUFFICIENT BALANCE|INSUFF BAL|FUNDS INSUFFICIENT|CHQ RET|CHQ RETURN|CHEQUE RETURN|"
        "CHEQUE RETURNED|ECS RETURN|NACH RETURN|ACH RETURN|DD RETURN|NEFT RETURN|"
        "IMPS RETURN|RETURN CHQ|INWARD RETURN|OUTWARD RETURN|REFER TO DRAWER",
    ),
    _default(
        "education",
        EDUCATION,
        5,
        "SCHOOL|COLLEGE|UNIVERSITY|TUITION|EDUCATION|BYJUS|COURSERA|UDEMY",
        direction=_DEBIT,
    ),
    _default(
        "bank fees and charges",
        FEES_CHARGES,
        10,
        "CHARGE|CHARGES|CHGS|CHG|FEE|FEES|SMS ALERT|AMC|MIN BAL|MINIMUM BALANCE|"
        "NON MAINTENANCE|GST ON|IGST|CGST|SGST|COMMISSION|PENALTY|PENAL|LATE PAYMENT|"
        "UNARRANGED|NON STERLING|FOREIGN TRANSACTION|CASH HANDLING",
        direction=_DEBIT,
    ),
    _default(
        "cash withdrawal",
        CASH_WITHDRAWAL,
        15,
        "ATM|ATW|NWD|NFS|LNK|CASHPOINT|CASH MACHINE|CASH WITHDRAWAL|CASH WDL|ATM WDL|CSH WDL|"
        "CASH W D|ATM WITHDRAWAL",
        direction=_DEBIT,
    ),
    _default(
        "cash deposit",
        CASH_DEPOSIT,
        16,
        "CASH DEPOSIT|CASH DEP|CSH DEP|CDM|BY CASH|CASH CR|CASH PAID IN|PAID IN AT|"
        "COUNTER CREDIT|CASH LODGEMENT",
        direction=_CREDIT,
    ),
    _default(
        "refund",
        REFUND,
        20,
        "REFUND|REFUNDED|REVERSAL|REVERSED|REV|CASHBACK|CHARGEBACK|RETURN|MERCHANT CREDIT",
        direction=_CREDIT,
    ),
    _default("card credit", REFUND, 21, "POS|VIS|VISA|DEBIT CARD", direction=_CREDIT),
    _default(
        "loan repayment",
        LOAN_EMI,
        25,
        "LOAN|EMI|MORTGAGE|FINANCE|FINSERV|BAJAJ FIN|HOME LOAN|CAR LOAN|PERSONAL LOAN|"
        "LOAN REPAYMENT",
        direction=_DEBIT,
    ),
    _default(
        "interest",
        INTEREST,
        30,
        "INTEREST|INT PD|INT CR|INT PAID|INT CREDIT|INT COLL|SB INT|CREDIT INTEREST|DEBIT INTEREST",
    ),
    _default(
        "salary",
        SALARY,
        40,
        "SALARY|SAL|PAYROLL|WAGES|WAGE|STIPEND|SALARY CREDIT",
        direction=_CREDIT,
    ),
    _default(
        "pension and benefits",
        PENSION_BENEFITS,
        45,
        "PENSION|DWP|UNIVERSAL CREDIT|CHILD BENEFIT|TAX CREDIT|TAX CREDITS|HMRC TAX|EPFO",
        direction=_CREDIT,
    ),
    _default("dividend", DIVIDEND, 47, "DIVIDEND|DIVIDENDS", direction=_CREDIT),
    _default("rental income", RENTAL_INCOME, 48, "RENT|RENTAL", direction=_CREDIT),
    _default(
        "rent",
        RENT,
        50,
        "RENT|RENTAL|HOUSE RENT|LANDLORD|LETTINGS|LETTING|TENANCY|NOBROKER",
        direction=_DEBIT,
    ),
    _default(
        "fuel",
        FUEL,
        60,
        "PETROL|DIESEL|FUEL|FILLING STATION|SERVICE STATION|GAS STATION|PETROLEUM|SHELL|ESSO|"
        "TEXACO|HPCL|BPCL|IOCL|INDIAN OIL|BHARAT PETROLEUM|HINDUSTAN PETROLEUM|NAYARA|JIO BP|"
        "CHEVRON|EXXON|MOBIL|VALERO",
        direction=_DEBIT,
    ),
    _default(
        "utilities",
        UTILITIES,
        65,
        "ELECTRICITY|ELECTRIC|POWER|ENERGY|BESCOM|MSEDCL|MSEB|BSES|TATA POWER|TORRENT POWER|"
        "WATER|BRITISH GAS|GAS BILL|INDANE|HP GAS|BHARAT GAS|MAHANAGAR GAS|EDF|E ON|OVO|"
        "OCTOPUS ENERGY|THAMES WATER|SEVERN TRENT|BROADBAND|INTERNET|VIRGIN MEDIA|BT GROUP|"
        "SKY DIGITAL|AIRTEL|JIO|VODAFONE|BSNL|POSTPAID|RECHARGE|DTH|TATA PLAY|BBPS",
        direction=_DEBIT,
    ),
    _default(
        "groceries",
        GROCERIES,
        70,
        "GROCERY|GROCERIES|SUPERMARKET|SUPERMARKETS|TESCO|SAINSBURY|SAINSBURYS|ASDA|MORRISONS|"
        "ALDI|LIDL|WAITROSE|CO OP|OCADO|ICELAND FOODS|BIGBASKET|BIG BASKET|DMART|D MART|"
        "AVENUE SUPERMARTS|RELIANCE FRESH|RELIANCE SMART|SPENCERS|NATURES BASKET|BLINKIT|"
        "ZEPTO|INSTAMART|JIOMART|KROGER|WHOLE FOODS|SAFEWAY|TRADER JOE",
        direction=_DEBIT,
    ),
    _default(
        "dining",
        DINING,
        80,
        "RESTAURANT|CAFE|COFFEE|STARBUCKS|COSTA|PRET|MCDONALDS|KFC|BURGER KING|DOMINOS|"
        "PIZZA|SWIGGY|ZOMATO|DELIVEROO|JUST EAT|UBER EATS|GREGGS|NANDOS",
        direction=_DEBIT,
    ),
    _default(
        "travel",
        TRAVEL,
        90,
        "UBER|OLA|RAPIDO|IRCTC|RAILWAY|RAILWAYS|TRAINLINE|TFL|TRANSPORT FOR LONDON|AIRLINES|"
        "AIRWAYS|INDIGO|AIR INDIA|EASYJET|RYANAIR|MAKEMYTRIP|GOIBIBO|BOOKING COM|AIRBNB|"
        "HOTEL|FASTAG|PARKING",
        direction=_DEBIT,
    ),
    _default(
        "subscriptions",
        SUBSCRIPTIONS,
        100,
        "NETFLIX|SPOTIFY|AMAZON PRIME|PRIME VIDEO|HOTSTAR|DISNEY|YOUTUBE PREMIUM|"
        "APPLE COM BILL|ITUNES|GOOGLE PLAY|MICROSOFT|ADOBE",
        direction=_DEBIT,
    ),
    _default(
        "insurance",
        INSURANCE,
        110,
        "INSURANCE|ASSURANCE|LIC|LIFE INSURANCE|PREMIUM|HDFC LIFE|ICICI PRU|SBI LIFE|"
        "STAR HEALTH|AVIVA|DIRECT LINE|ADMIRAL|LEGAL GENERAL",
    ),
    _default(
        "investment",
        INVESTMENT,
        120,
        "MUTUAL FUND|SIP|ZERODHA|GROWW|UPSTOX|ICCL|INDIAN CLEARING|CAMS|KFINTECH|VANGUARD|"
        "HARGREAVES|ISA|PPF|NPS|FIXED DEPOSIT|FD BOOKED|STOCKS|SHARES",
    ),
    _default(
        "tax",
        TAX,
        130,
        "INCOME TAX|TDS|GST PAYMENT|CBDT|ADVANCE TAX|HMRC|SELF ASSESSMENT|COUNCIL TAX|VAT|"
        "IRS|TAX PAYMENT|CHALLAN",
        direction=_DEBIT,
    ),
    _default(
        "healthcare",
        HEALTHCARE,
        135,
        "PHARMACY|CHEMIST|HOSPITAL|CLINIC|MEDICAL|APOLLO|MEDPLUS|BOOTS|DENTAL|DENTIST|"
        "PHARMEASY|NETMEDS",
        direction=_DEBIT,
    ),
    _default(
        "credit card bill",
        CREDIT_CARD_BILL,
        140,
        "CREDIT CARD|CC PAYMENT|CARD BILL|CRED CLUB|AMEX|AMERICAN EXPRESS|BARCLAYCARD|"
        "CAPITAL ONE|MBNA",
        direction=_DEBIT,
    ),
    _default(
        "wallet top-up",
        WALLET,
        150,
        "WALLET|MOBIKWIK|FREECHARGE|PAYTM ADD MONEY|AMAZON PAY",
        direction=_DEBIT,
    ),
    _default(
        "shopping",
        SHOPPING,
        160,
        "AMAZON|AMZN|PAYPAL|FLIPKART|MYNTRA|AJIO|MEESHO|NYKAA|EBAY|ARGOS|JOHN LEWIS|PRIMARK|IKEA",
        direction=_DEBIT,
    ),
    _default("cash withdrawal code", CASH_WITHDRAWAL, 200, pattern=r"^\s*CPT\b", direction=_DEBIT),
    _default(
        "cheque",
        CHEQUE,
        300,
        "CHQ|CHEQUE|CHEQUES|CLG|INWARD CLG|CLEARING|MICR|CTS|CHECK",
    ),
    _default(
        "direct debit",
        BILL_PAYMENT,
        350,
        "DIRECT DEBIT|DD|OBP|BILL PAYMENT|BILLPAY|BILLDESK|BPAY|ECS|NACH",
        direction=_DEBIT,
    ),
    _default("bill payment code", BILL_PAYMENT, 351, pattern=r"^\s*BP\b", direction=_DEBIT),
    _default(
        "transfer",
        TRANSFER,
        400,
        "NEFT|IMPS|RTGS|UPI|FUND TRANSFER|FUNDS TRANSFER|TRANSFER|TRF|TFR|BACS|FASTER PAYMENT|"
        "FASTER PAYMENTS|FPS|FPI|FPO|BGC|BANK GIRO|STANDING ORDER|STO|ACH|ZELLE|VENMO|WIRE|"
        "SEPA|SWIFT|TPT|INB|INFT|NET BANKING|MOBILE BANKING|OWN ACCOUNT|SELF|MMT",
    ),
    _default("standing order code", TRANSFER, 401, pattern=r"^\s*SO\b"),
    _default(
        "card payment",
        CARD_PAYMENT,
        500,
        "POS|VIS|VISA|VPS|DEB|DEBIT CARD|CARD PAYMENT|CARD PURCHASE|CONTACTLESS|MASTERCARD|"
        "MAESTRO|RUPAY|ECOM|PCD",
        direction=_DEBIT,
    ),
    _default("contactless code", CARD_PAYMENT, 501, pattern=r"^\s*\)\)\)", direction=_DEBIT),
)


@dataclass(frozen=True, slots=True)
class _CompiledRules:
    """Rules in winning order plus a word index, so a row looks only at rules it can hit."""

    rules: tuple[Rule, ...]
    patterns: tuple[re.Pattern[str] | None, ...]
    by_phrase: Mapping[str, frozenset[int]]
    phrase_starts: frozenset[str]
    longest_phrase: int
    always: frozenset[int]  # rules without keywords: every row is a candidate
    digit_keywords: bool  # when no keyword holds a digit, rows can share work by shape


@functools.lru_cache(maxsize=64)
def _compile(rules: tuple[Rule, ...]) -> _CompiledRules:
    ordered = tuple(
        rule for _, rule in sorted(enumerate(rules), key=lambda pair: (pair[1].priority, pair[0]))
    )
    by_phrase: defaultdict[str, set[int]] = defaultdict(set)
    starts: set[str] = set()
    longest = 1
    for rank, rule in enumerate(ordered):
        for keyword in rule.keywords:
            words = _words(keyword)
            by_phrase[" ".join(words)].add(rank)
            if len(words) > 1:
                starts.add(words[0])
                longest = max(longest, len(words))
    return _CompiledRules(
        rules=ordered,
        patterns=tuple(None if r.pattern is None else compile_pattern(r.pattern) for r in ordered),
        by_phrase={phrase: frozenset(ranks) for phrase, ranks in by_phrase.items()},
        phrase_starts=frozenset(starts),
        longest_phrase=longest,
        always=frozenset(rank for rank, rule in enumerate(ordered) if not rule.keywords),
        digit_keywords=any(_DIGIT.search(k) for rule in ordered for k in rule.keywords),
    )


def _candidates(compiled: _CompiledRules, description: str) -> list[int]:
    words = _WORD.findall(description.casefold())
    lookup = compiled.by_phrase.get
    hits = [ranks for word in words if (ranks := lookup(word))]
    if not compiled.phrase_starts.isdisjoint(words):
        for start, word in enumerate(words):
            if word in compiled.phrase_starts:
                for end in range(start + 2, min(len(words), start + compiled.longest_phrase) + 1):
                    if ranks := lookup(" ".join(words[start:end])):
                        hits.append(ranks)
    return sorted(compiled.always.union(*hits))


def _first_match(
    compiled: _CompiledRules, transaction: Transaction, candidates: list[int]
) -> Rule | None:
    size = abs(transaction.amount)
    direction = transaction.direction
    for rank in candidates:
        rule = compiled.rules[rank]
        if rule.direction is not None and rule.direction is not direction:
            continue
        if rule.min_amount is not None and size < rule.min_amount:
            continue
        if rule.max_amount is not None and size > rule.max_amount:
            continue
        pattern = compiled.patterns[rank]
        if pattern is not None and not pattern.search(
            transaction.description, 0, MATCHED_TEXT_LIMIT
        ):
            continue
        return rule
    return None


def categorise(
    transactions: Sequence[Transaction],
    rules: Sequence[Rule] = DEFAULT_RULES,
    overrides: Mapping[int, str] | None = None,
) -> list[CategorisedTransaction]:
    """Categorise rows in statement order; `overrides` (row -> category) win over every rule.

    Pass `org_rules + DEFAULT_RULES`: see the module docstring for how priorities combine.
    Rows of a statement repeat the same wording with other references, so the word lookup
    and the counterparty are worked out once per description shape (digits zeroed).
    """
    compiled = _compile(tuple(rules))
    overrides = overrides or {}
    categorised: list[CategorisedTransaction] = []
    parties: dict[str, str | None] = {}
    candidates_by_shape: dict[str, list[int]] = {}
    for transaction in transactions:
        description = transaction.description
        shape = description.translate(_ZERO_DIGITS)
        if shape in parties:
            counterparty = parties[shape]
        else:
            counterparty = parties[shape] = _counterparty_of_shape(shape)
        chosen = overrides.get(transaction.row)
        if chosen is not None:
            categorised.append(CategorisedTransaction(transaction, chosen, counterparty))
            continue
        word_key = description if compiled.digit_keywords else shape
        candidates = candidates_by_shape.get(word_key)
        if candidates is None:
            candidates = candidates_by_shape[word_key] = _candidates(compiled, description)
        rule = _first_match(compiled, transaction, candidates)
        if rule is None:
            categorised.append(CategorisedTransaction(transaction, UNCATEGORISED, counterparty))
        else:
            categorised.append(
                CategorisedTransaction(transaction, rule.category, counterparty, rule=rule.name)
            )
    recurring = {id(m) for group in find_recurring(categorised) for m in group.members}
    return [
        dataclasses.replace(item, recurring=True) if id(item) in recurring else item
        for item in categorised
    ]


# --- counterparties -----------------------------------------------------------------------

_NO_COUNTERPARTY = re.compile(
    r"^(?:ATM\b|ATW\b|NWD\b|NFS\b|CASH\b|BY CASH\b|CSH\b|INTEREST\b|"
    r"INT\.?\s?(?:PD|CR|PAID)\b|SB\s?INT\b|"
    r"CREDIT INTEREST|DEBIT INTEREST|(?:SERVICE\s)?CHARGES?\b|CHGS?\b|BALANCE\b|OPENING\b|"
    r"CLOSING\b|B/F\b|C/F\b)"
)
_TRANSFER_LEAD = re.compile(r"^(?:BY|TO)\s+(?:TRANSFER|CLG|CLEARING)\s*[-:]?\s*")
_RAILS = r"(?:UPI|NEFT|IMPS|RTGS|NACH|ACH|ECS|MMT|INB|INFT|IFT|NFT|BIL|BILLPAY|ONL|TPT|FT|MOB)"
_STRUCTURED = re.compile(rf"^{_RAILS}(?:\s+(?:{_RAILS}|DR|CR|D|C))*\s*[-/*:]")
_SEGMENT_SPLIT = re.compile(r"[/*|:]|\s*-\s*")
_FILLER_WORDS = (
    "UPI NEFT IMPS RTGS NACH ACH ECS MMT INB INFT IFT NFT IB NB BIL BILLPAY ONL TPT FT MOB MB "
    "POS TRANSFER TRF TFR BY TO FROM DR CR D C P2A P2M P2P PAY PAYMENT COLLECT TP REQ SENT "
    "SBIN HDFC ICIC UTIB KKBK YESB PUNB BARB CNRB IDIB UBIN BKID IOBA INDB FDRL"
)
_FILLER = frozenset(_FILLER_WORDS.split())
_IFSC = re.compile(r"^[A-Z]{4}0[A-Z0-9]{6}$")
_FREE_PREFIX = re.compile(
    r"^(?:(?:DEBIT CARD PURCHASE|CARD PAYMENT TO|CARD PAYMENT|CARD PURCHASE|POS PURCHASE|"
    r"PURCHASE|CONTACTLESS PAYMENT|CONTACTLESS|ONLINE PAYMENT TO|DIRECT DEBIT TO|DIRECT DEBIT|"
    r"STANDING ORDER TO|STANDING ORDER|BILL PAYMENT TO|BILL PAYMENT|BANK GIRO CREDIT|"
    r"FASTER PAYMENTS? RECEIVED FROM|FASTER PAYMENTS? TO|FASTER PAYMENTS?|TRANSFER TO|"
    r"TRANSFER FROM|TRF TO|TRF FROM|PAYMENT TO|PAYMENT FROM|RECEIVED FROM|BACS|POS|VIS|VISA|"
    r"VPS|DEB|OBP|DD|SO|STO|BP|BGC|FPI|FPO|TFR|CR|DR|ECOM|PCD|CHQ|P2A|P2M|\)\)\)|"
    rf"{_RAILS})(?=[\s\d.:-]|$)"
    r"[\s.:-]*(?:[\dX*]{4,}\s+)?)+"
)
_FREE_TAIL = re.compile(r"\s(?:(?:REF|REFERENCE|VIA)\b|ON\s+\d|AT\s+\d{1,2}[:.]\d{2}).*$")
# Dates such as "12 JAN 2024", then any word holding a digit: references, masked cards,
# dates, times, store numbers.
_NOISE = re.compile(
    r"\b\d{1,2}\s?(?:JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|"
    r"AUG(?:UST)?|SEP(?:T|TEMBER)?|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)(?![A-Z])"
    r"(?:\s?\d{2,4})?|[^\s\d]*+\d\S*"
)
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " -.,*#:/&"


_LETTER = re.compile(r"[^\W\d_]")


def _letters(text: str) -> int:
    return len(_LETTER.findall(text))


def _clean_name(text: str) -> str | None:
    text = _FREE_TAIL.sub("", text)
    text = _SPACES.sub(" ", _NOISE.sub(" ", text)).strip(_EDGE_PUNCTUATION)
    return text if _letters(text) >= 2 else None


def _name_from_segments(segments: Iterable[str]) -> str | None:
    vpa_name: str | None = None
    for raw in segments:
        words = raw.split()
        while words and words[0] in _FILLER:
            words.pop(0)
        segment = " ".join(words).strip(_EDGE_PUNCTUATION)
        if not segment or _IFSC.match(segment):
            continue
        if "@" in segment:
            vpa_name = vpa_name or _clean_name(segment.split("@")[0].replace(".", " "))
            continue
        if len(_DIGIT.findall(segment)) >= 4 and _letters(segment) <= 8:
            continue  # a reference such as N123456789 or HDFCN52022012345678
        if name := _clean_name(segment):
            return name
    return vpa_name


def extract_counterparty(description: str) -> str | None:
    """The payee or payer named in a description, upper-case, or None when there is none.

    Drops rail prefixes and codes (UPI/, NEFT-, POS, DD, FPI...), card masks, references,
    dates and IFSC codes; cash, interest and bank charges have no counterparty.
    """
    return _counterparty_of_shape(description.translate(_ZERO_DIGITS))


def _counterparty_of_shape(shape: str) -> str | None:
    """Digits only ever count, never matter by value, and a name never keeps one: so the
    answer for a description is the answer for its shape, which rows share."""
    text = " ".join(shape.upper().split())
    if not text or _NO_COUNTERPARTY.match(text):
        return None
    text = _TRANSFER_LEAD.sub("", text)
    if _STRUCTURED.match(text):
        return _name_from_segments(_SEGMENT_SPLIT.split(text))
    return _clean_name(_FREE_PREFIX.sub("", text))


# --- recurring payments -------------------------------------------------------------------

MIN_RUN_SHARE = 0.5
# (name, shortest gap, longest gap, most the gaps of one run may differ), in days: a payment
# due on the 1st moves by a weekend or a bank holiday, so monthly gaps span 28 to 34.
_INTERVALS: tuple[tuple[str, int, int, int], ...] = (
    ("weekly", 6, 8, 2),
    ("fortnightly", 13, 15, 2),
    ("monthly", 26, 35, 7),
    ("quarterly", 85, 98, 10),
)
_SPREAD = {name: spread for name, _, _, spread in _INTERVALS}


def _interval_name(days: int) -> str | None:
    for name, shortest, longest, _ in _INTERVALS:
        if shortest <= days <= longest:
            return name
    return None


@dataclass(frozen=True, slots=True)
class RecurringGroup:
    """Payments to or from one counterparty, of similar size, at a regular interval."""

    counterparty: str
    direction: Direction
    interval: str  # weekly, fortnightly, monthly or quarterly
    interval_days: float  # median days between occurrences
    typical_amount: Decimal  # median absolute amount
    members: tuple[CategorisedTransaction, ...]

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def first_date(self) -> dt.date:
        return self.members[0].transaction.date

    @property
    def last_date(self) -> dt.date:
        return self.members[-1].transaction.date

    @property
    def total(self) -> Decimal:
        return sum((abs(m.transaction.amount) for m in self.members), Decimal(0))

    @property
    def category(self) -> str:
        return statistics.mode(m.category for m in self.members)


def _similar_amounts(
    items: list[CategorisedTransaction], tolerance: Decimal
) -> list[list[CategorisedTransaction]]:
    """Clusters whose amounts lie within `tolerance` (a fraction) of the cluster's smallest."""
    clusters: list[list[CategorisedTransaction]] = []
    ceiling = Decimal(-1)
    for item in sorted(items, key=lambda i: abs(i.transaction.amount)):
        size = abs(item.transaction.amount)
        if size > ceiling:
            clusters.append([])
            ceiling = size * (1 + tolerance)
        clusters[-1].append(item)
    return clusters


def _regular_runs(
    items: list[CategorisedTransaction], min_occurrences: int
) -> Iterable[tuple[str, list[CategorisedTransaction]]]:
    """Stretches of consecutive occurrences whose gaps are all of one interval kind and
    close to each other: a frequent payee paid similar sums at random would otherwise pass
    for a monthly one now and then."""
    ordered = sorted(items, key=lambda i: (i.transaction.date, i.transaction.row))
    run: list[CategorisedTransaction] = ordered[:1]
    kind: str | None = None
    shortest = longest = 0
    for item in ordered[1:]:
        gap = (item.transaction.date - run[-1].transaction.date).days
        step = _interval_name(gap)
        if step is not None and kind is None:
            run.append(item)
            kind, shortest, longest = step, gap, gap
            continue
        if (
            step is not None
            and step == kind
            and max(longest, gap) - min(shortest, gap) <= _SPREAD[step]
        ):
            run.append(item)
            shortest, longest = min(shortest, gap), max(longest, gap)
            continue
        if kind is not None and len(run) >= min_occurrences:
            yield kind, run
        if step is None:
            run, kind = [item], None
        else:
            run, kind, shortest, longest = [run[-1], item], step, gap, gap
    if kind is not None and len(run) >= min_occurrences:
        yield kind, run


def find_recurring(
    items: Iterable[CategorisedTransaction],
    *,
    amount_tolerance: Decimal = Decimal("0.10"),
    min_occurrences: int = 3,
) -> list[RecurringGroup]:
    """Regular payments: one counterparty and direction, amounts within `amount_tolerance`
    of each other, at least `min_occurrences` at a weekly/fortnightly/monthly/quarterly pace.

    Rows without a counterparty are never recurring. A run must also be at least
    MIN_RUN_SHARE of that counterparty's rows (same direction) over its dates, so a shop
    visited every few days does not pass for a subscription.
    """
    by_party: defaultdict[tuple[str, Direction], list[CategorisedTransaction]] = defaultdict(list)
    for item in items:
        if item.counterparty:
            by_party[item.counterparty, item.transaction.direction].append(item)
    groups: list[RecurringGroup] = []
    for (counterparty, direction), members in by_party.items():
        if len(members) < min_occurrences:
            continue
        dates = sorted(m.transaction.date for m in members)
        for cluster in _similar_amounts(members, amount_tolerance):
            for kind, run in _regular_runs(cluster, min_occurrences):
                first, last = run[0].transaction.date, run[-1].transaction.date
                alongside = bisect.bisect_right(dates, last) - bisect.bisect_left(dates, first)
                if len(run) < MIN_RUN_SHARE * alongside:
                    continue
                gaps = [
                    (b.transaction.date - a.transaction.date).days
                    for a, b in itertools.pairwise(run)
                ]
                groups.append(
                    RecurringGroup(
                        counterparty=counterparty,
                        direction=direction,
                        interval=kind,
                        interval_days=float(statistics.median(gaps)),
                        typical_amount=statistics.median(abs(m.transaction.amount) for m in run),
                        members=tuple(run),
                    )
                )
    groups.sort(key=lambda g: (g.counterparty, g.direction, g.first_date))
    return groups
