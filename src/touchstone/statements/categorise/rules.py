"""One categorisation rule, and the checks that refuse a bad one with a reason.

An org writes its own rules through the API, so every field is checked here: lengths,
amounts, and regexes whose shape could make Python's backtracking `re` run forever.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from touchstone.statements.categorise.text import words_of
from touchstone.statements.domain import Direction

DEFAULT_PRIORITY_START = 1000
MAX_PATTERN_LENGTH = 200
MAX_WIDE_REPEATS = 2
WIDE_REPEAT_SPAN = 32
MATCHED_TEXT_LIMIT = 256
MAX_KEYWORDS = 200
MAX_TEXT_LENGTH = 100

_sre_parser: Any = importlib.import_module("re._parser")  # no public API walks a pattern
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


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
            if not words_of(_check_text(keyword, "keyword")):
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
