"""Recurring payments: one counterparty, similar sums, a weekly to quarterly rhythm."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from touchstone.statements.domain import CategorisedTransaction, Direction

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
