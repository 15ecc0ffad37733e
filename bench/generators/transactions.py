"""Synthetic statement rows in Indian and UK wording, with a running balance.

Descriptions come from templates with fresh references, dates and card numbers on every row,
as real statements repeat the same payees with different references; a few payees recur
monthly (salary, rent, EMI, subscriptions) so the recurring detector has work to do.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from touchstone.statements.domain import Transaction

PAYEES = (
    "RAHUL KUMAR", "PRIYA SHARMA", "ACME TRADERS", "GLOBAL MART", "J SMITH", "A PATEL",
    "SUNRISE STORES", "CITY PHARMACY", "METRO CAFE", "GREEN GROCERS", "S KHAN", "M JONES",
)  # fmt: skip
# (template, smallest, largest amount, credit?)
TEMPLATES: tuple[tuple[str, int, int, bool], ...] = (
    ("UPI/DR/{ref12}/{payee}/SBIN/{handle}@oksbi/Payment", 50, 4000, False),
    ("UPI/CR/{ref12}/{payee}/HDFC/{handle}@okhdfc/UPI", 100, 6000, True),
    ("IMPS/P2A/{ref12}/{payee}/ICICI", 500, 20000, False),
    ("NEFT-HDFCN{ref14}-{payee}-TRANSFER", 1000, 50000, True),
    ("POS {card} {payee} {city}", 100, 5000, False),
    ("CARD PAYMENT TO TESCO STORES {store} ON {date}", 5, 120, False),
    ("CARD PAYMENT TO SHELL {city} ON {date}", 20, 90, False),
    ("ATM WDL {ref6} {city}", 500, 10000, False),
    ("CASH DEPOSIT {city} BRANCH", 1000, 25000, True),
    ("DD BRITISH GAS {ref8}", 40, 140, False),
    ("FASTER PAYMENT RECEIVED FROM {payee} REF {ref6}", 50, 900, True),
    ("SWIGGY ORDER {ref8}", 150, 900, False),
    ("AMAZON RETAIL {ref8}", 200, 6000, False),
    ("CHQ DEP {ref6} {payee}", 1000, 30000, True),
    ("SMS ALERT CHARGES QTR {date}", 15, 30, False),
    ("CHQ RET INSUFFICIENT FUNDS {ref6}", 500, 5000, False),
    ("REFUND AMAZON {ref8}", 100, 2000, True),
    ("RANDOM PAYEE {ref6}", 10, 500, False),
)
MONTHLY: tuple[tuple[str, int, bool], ...] = (
    ("NEFT-HDFCN{ref14}-ACME CORP PVT LTD-SALARY", 85000, True),
    ("SO LANDLORD J BROWN RENT", 22000, False),
    ("NACH-DR-BAJAJ FINANCE LTD-{ref10}", 12500, False),
    ("VIS NETFLIX.COM {ref6}", 649, False),
)
CITIES = ("MUMBAI", "LONDON", "PUNE", "LEEDS", "BANGALORE")


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _fill(template: str, rng: random.Random, day: dt.date) -> str:
    payee = rng.choice(PAYEES)
    return template.format(
        payee=payee,
        handle=payee.split()[0].lower(),
        city=rng.choice(CITIES),
        card=f"4591XXXXXXXX{_digits(rng, 4)}",
        store=_digits(rng, 4),
        date=day.strftime("%d-%m-%Y"),
        ref6=_digits(rng, 6),
        ref8=_digits(rng, 8),
        ref10=_digits(rng, 10),
        ref12=_digits(rng, 12),
        ref14=_digits(rng, 14),
    )


def transactions(count: int, *, seed: int = 7, start: dt.date | None = None) -> list[Transaction]:
    """`count` rows in date order over about a year, balances consistent with the amounts."""
    rng = random.Random(seed)
    start = start or dt.date(2024, 1, 1)
    per_day = max(1, count // 365)
    balance = Decimal("250000.00")
    rows: list[Transaction] = []
    day = start
    while len(rows) < count:
        todays: list[tuple[str, Decimal]] = []
        if day.day == 1:
            for template, typical, credit in MONTHLY:
                value = Decimal(typical) * Decimal(rng.uniform(0.98, 1.02))
                todays.append((_fill(template, rng, day), value if credit else -value))
        for _ in range(per_day):
            template, low, high, credit = rng.choice(TEMPLATES)
            value = Decimal(rng.uniform(low, high))
            todays.append((_fill(template, rng, day), value if credit else -value))
        for description, value in todays[: count - len(rows)]:
            amount = value.quantize(Decimal("0.01"))
            balance += amount
            rows.append(
                Transaction(
                    date=day,
                    description=description,
                    amount=amount,
                    balance=balance,
                    page=1 + len(rows) // 40,
                    row=len(rows),
                )
            )
        day += dt.timedelta(days=1)
    return rows
