"""Which rule each row matches: the rules compiled into a word index, and `categorise`.

A row is checked only against the rules one of its words (or phrases) can hit, plus the
rules without keywords; the first of those, in priority order, whose every condition holds
wins. Overrides win over every rule.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from touchstone.statements.categorise.categories import UNCATEGORISED
from touchstone.statements.categorise.counterparties import counterparty_of_shape
from touchstone.statements.categorise.defaults import DEFAULT_RULES
from touchstone.statements.categorise.recurring import find_recurring
from touchstone.statements.categorise.rules import MATCHED_TEXT_LIMIT, Rule, compile_pattern
from touchstone.statements.categorise.text import DIGIT, WORD, ZERO_DIGITS, words_of
from touchstone.statements.domain import CategorisedTransaction, Transaction


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
            words = words_of(keyword)
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
        digit_keywords=any(DIGIT.search(k) for rule in ordered for k in rule.keywords),
    )


def _candidates(compiled: _CompiledRules, description: str) -> list[int]:
    words = WORD.findall(description.casefold())
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
        shape = description.translate(ZERO_DIGITS)
        if shape in parties:
            counterparty = parties[shape]
        else:
            counterparty = parties[shape] = counterparty_of_shape(shape)
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
