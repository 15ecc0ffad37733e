"""Underwriting analysis on hand-made rows, every figure worked out by hand below."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from touchstone.statements.analysis import (
    AccountAnalysis,
    ReturnDirection,
    ReturnKind,
    StatementRecords,
    analyse,
)
from touchstone.statements.analysis.records import Line
from touchstone.statements.analysis.returns import read_wording, says_returned
from touchstone.statements.categorise import categories as cat
from touchstone.statements.categorise import categorise
from touchstone.statements.domain import CategorisedTransaction, Transaction

D = Decimal
JAN_1, MAR_31 = dt.date(2024, 1, 1), dt.date(2024, 3, 31)


def rows(
    opening: str, lines: list[tuple[str, str, str, str, str | None]]
) -> list[CategorisedTransaction]:
    """(day, description, amount, category, counterparty), with the running balance a
    statement prints."""
    balance, out = D(opening), []
    for row, (day, description, amount, category, counterparty) in enumerate(lines):
        balance += D(amount)
        txn = Transaction(dt.date.fromisoformat(day), description, D(amount), balance, 1, row)
        out.append(CategorisedTransaction(txn, category, counterparty))
    return out


# Account A, opening 1,000.00: a salary every month from ACME CORP (50,000, 50,000, 52,000),
# an EMI of 10,000 to Bajaj Finance on the 5th, cash both ways, 3,000 sent to account B.
SALARIED = rows(
    "1000.00",
    [
        ("2024-01-01", "NEFT-ACME CORP-SAL JAN", "50000", cat.SALARY, "ACME CORP"),
        ("2024-01-05", "NACH-DR-BAJAJ FINANCE LTD", "-10000", cat.LOAN_EMI, "BAJAJ FINANCE LTD"),
        ("2024-01-10", "ATM WDL MG ROAD", "-5000", cat.CASH_WITHDRAWAL, None),
        ("2024-01-20", "CASH DEPOSIT BRANCH", "2000", cat.CASH_DEPOSIT, None),
        ("2024-02-01", "NEFT-ACME CORP-SAL FEB", "50000", cat.SALARY, "ACME CORP"),
        ("2024-02-05", "NACH-DR-BAJAJ FINANCE LTD", "-10000", cat.LOAN_EMI, "BAJAJ FINANCE LTD"),
        ("2024-02-10", "IMPS-TO SELF ICICI", "-3000", cat.TRANSFER, "SELF"),
        ("2024-03-01", "NEFT-ACME CORP-SAL MAR", "52000", cat.SALARY, "ACME CORP"),
        ("2024-03-05", "NACH-DR-BAJAJ FINANCE LTD", "-10000", cat.LOAN_EMI, "BAJAJ FINANCE LTD"),
    ],
)
# Account B, opening 500.00: the 3,000 arrives a day later; a cheque of 4,500 overdraws it
# for a day, comes back unpaid (inward return) and costs a 590 charge; 60,000 arrives.
SECOND = rows(
    "500.00",
    [
        ("2024-01-15", "UPI-RAVI KUMAR", "700", cat.TRANSFER, "RAVI KUMAR"),
        ("2024-02-11", "IMPS-FROM SELF HDFC", "3000", cat.TRANSFER, "SELF"),
        ("2024-02-20", "CHQ 000123 LANDLORD", "-4500", cat.CHEQUE, None),
        ("2024-02-21", "I/W CHQ RTN 000123 INSUFFICIENT FUNDS", "4500", cat.RETURNED, None),
        ("2024-02-22", "CHQ RTN CHGS", "-590", cat.RETURNED, None),
        ("2024-03-10", "NEFT-BIG DEAL TRADERS", "60000", cat.TRANSFER, "BIG DEAL TRADERS"),
    ],
)


def records(
    name: str, account: str, opening: str, items: list[CategorisedTransaction]
) -> StatementRecords:
    return StatementRecords(name, account, items, "INR", JAN_1, MAR_31, D(opening))


@pytest.fixture(scope="module")
def accounts() -> list[AccountAnalysis]:
    batch = analyse(
        [
            records("a.pdf", "HDFC XXXX1111", "1000.00", SALARIED),
            records("b.pdf", "ICICI XXXX2222", "500.00", SECOND),
        ]
    )
    assert [a.account for a in batch.accounts] == ["HDFC XXXX1111", "ICICI XXXX2222"]
    (transfer,) = batch.own_transfers
    assert (transfer.amount, transfer.from_account, transfer.to_account) == (
        D(3000),
        "HDFC XXXX1111",
        "ICICI XXXX2222",
    )
    assert transfer.debit.date == dt.date(2024, 2, 10)
    assert transfer.credit.date == dt.date(2024, 2, 11)
    assert (transfer.debit.statement, transfer.credit.statement) == ("a.pdf", "b.pdf")
    return batch.accounts


def test_daily_balances_carry_over_quiet_days(accounts: list[AccountAnalysis]) -> None:
    salaried, second = accounts
    # Jan: 51,000 x 4 days + 41,000 x 5 + 36,000 x 10 + 38,000 x 12 = 1,225,000 / 31
    # Feb: 88,000 x 4 + 78,000 x 5 + 75,000 x 20 = 2,242,000 / 29 (2024 is a leap year)
    # Mar: 127,000 x 4 + 117,000 x 27 = 3,667,000 / 31
    assert [(m.month, m.days, m.average_balance, m.minimum_balance) for m in salaried.months] == [
        (dt.date(2024, 1, 1), 31, D("39516.13"), D(36000)),
        (dt.date(2024, 2, 1), 29, D("77310.34"), D(75000)),
        (dt.date(2024, 3, 1), 31, D("118290.32"), D(117000)),
    ]
    # Jan: 500 x 14 + 1,200 x 17 = 27,400 / 31
    # Feb: 1,200 x 10 + 4,200 x 9 - 300 x 1 + 4,200 x 1 + 3,610 x 8 = 82,580 / 29
    # Mar: 3,610 x 9 + 63,610 x 22 = 1,431,910 / 31
    assert [(m.average_balance, m.minimum_balance, m.negative_days) for m in second.months] == [
        (D("883.87"), D(500), 0),
        (D("2847.59"), D(-300), 1),
        (D("46190.65"), D(3610), 0),
    ]
    assert second.negative_days == (dt.date(2024, 2, 20),)
    assert salaried.negative_days == ()
    assert (salaried.first_day, salaried.last_day) == (JAN_1, MAR_31)


def test_salary_employer_and_stability(accounts: list[AccountAnalysis]) -> None:
    income = accounts[0].income
    assert income.employer == "ACME CORP"
    assert [c.amount for c in income.credits] == [D(50000), D(50000), D(52000)]
    assert (income.months, income.average_monthly, income.regular) == (3, D("50666.67"), True)
    # mean 50,666.67; deviations -666.67, -666.67, +1,333.33: pstdev 942.81; / mean = 0.0186
    assert income.variation == D("0.0186")
    assert [m.salary for m in accounts[0].months] == [D(50000), D(50000), D(52000)]
    assert [m.salary_change for m in accounts[0].months] == [None, D("0.0000"), D("0.0400")]
    assert accounts[1].income.employer is None
    assert accounts[1].income.credits == ()


def test_emi_and_foir(accounts: list[AccountAnalysis]) -> None:
    salaried = accounts[0]
    (emi,) = salaried.obligations
    assert (emi.lender, emi.interval, emi.typical_amount, emi.total) == (
        "BAJAJ FINANCE LTD",
        "monthly",
        D(10000),
        D(30000),
    )
    assert [m.obligations for m in salaried.months] == [D(10000)] * 3
    # 10,000 / 50,000; 10,000 / 50,000; 10,000 / 52,000; overall 30,000 / 152,000
    assert [m.foir for m in salaried.months] == [D("0.2000"), D("0.2000"), D("0.1923")]
    assert salaried.foir == D("0.1974")
    assert accounts[1].foir is None  # no income, no ratio


def test_bounce_with_its_charge(accounts: list[AccountAnalysis]) -> None:
    second = accounts[1]
    (bounce,) = second.returned
    assert (bounce.kind, bounce.direction, bounce.date) == (
        ReturnKind.CHEQUE,
        ReturnDirection.INWARD,
        dt.date(2024, 2, 21),
    )
    assert bounce.returned is not None
    assert bounce.returned.amount == D(4500)
    assert [(c.date, c.amount) for c in bounce.charges] == [(dt.date(2024, 2, 22), D(-590))]
    assert bounce.charged == D(590)
    feb = second.months[1]
    assert (feb.returned_inward, feb.returned_outward, feb.return_charges) == (1, 0, D(590))
    assert accounts[0].returned == ()


def test_cash_shares(accounts: list[AccountAnalysis]) -> None:
    salaried = accounts[0]
    jan = salaried.months[0]
    # credits 52,000 of which 2,000 cash; debits 15,000 of which 5,000 cash
    assert (jan.credits, jan.cash_deposits, jan.cash_deposit_share) == (
        D(52000),
        D(2000),
        D("0.0385"),
    )
    assert (jan.debits, jan.cash_withdrawals, jan.cash_withdrawal_share) == (
        D(15000),
        D(5000),
        D("0.3333"),
    )
    # 2,000 of 154,000 in; 5,000 of 38,000 out
    assert (salaried.cash_deposit_share, salaried.cash_withdrawal_share) == (
        D("0.0130"),
        D("0.1316"),
    )
    feb = salaried.months[1]
    assert (feb.cash_deposit_share, feb.cash_withdrawal_share) == (D("0.0000"), D("0.0000"))


def test_large_and_round_credits(accounts: list[AccountAnalysis]) -> None:
    salaried, second = accounts
    # B's credits 700, 3,000, 4,500, 60,000: median 3,750, five times that 18,750. The own
    # transfer and the returned cheque are explained; 60,000 is large and round.
    assert second.median_credit == D("3750.00")
    assert [c.amount for c in second.large_credits] == [D(60000)]
    assert [c.amount for c in second.round_credits] == [D(60000)]
    assert [(m.large_credits, m.round_credits) for m in second.months] == [(0, 0), (0, 0), (1, 1)]
    # A's salary is explained; the 2,000 cash deposit is a round figure, not a large one.
    assert salaried.large_credits == ()
    assert [c.amount for c in salaried.round_credits] == [D(2000)]


def test_own_transfers_per_month(accounts: list[AccountAnalysis]) -> None:
    salaried, second = accounts
    assert [m.own_transfers_out for m in salaried.months] == [D(0), D(3000), D(0)]
    assert [m.own_transfers_in for m in second.months] == [D(0), D(3000), D(0)]


def test_a_transfer_needs_another_account_and_two_days_at_most() -> None:
    later = rows("0", [("2024-02-13", "IMPS-FROM SELF HDFC", "3000", cat.TRANSFER, "SELF")])
    batch = analyse(
        [
            records("a.pdf", "HDFC XXXX1111", "1000.00", SALARIED),
            records("b.pdf", "ICICI XXXX2222", "0", later),  # three days after the debit
            records("c.pdf", "HDFC XXXX1111", "0", later[:0]),
        ]
    )
    assert batch.own_transfers == []
    assert [a.statements for a in batch.accounts] == [("a.pdf", "c.pdf"), ("b.pdf",)]


def test_monthly_statements_of_one_account_make_one_run_of_days() -> None:
    january = rows("100", [("2024-01-10", "UPI-ASHA", "100", cat.TRANSFER, "ASHA")])
    february = rows("200", [("2024-02-15", "UPI-RAVI", "-300", cat.TRANSFER, "RAVI")])
    jan = StatementRecords("jan.pdf", "A", january, "INR", JAN_1, dt.date(2024, 1, 31), D(100))
    feb = StatementRecords(
        "feb.pdf", "A", february, "INR", dt.date(2024, 2, 1), dt.date(2024, 2, 29), D(200)
    )
    (account,) = analyse([feb, jan]).accounts  # uploaded in any order
    assert account.statements == ("feb.pdf", "jan.pdf")
    # Jan: 100 x 9 + 200 x 22 = 5,300 / 31; Feb: 200 x 14 - 100 x 15 = 1,300 / 29
    assert [(m.days, m.average_balance, m.negative_days) for m in account.months] == [
        (31, D("170.97"), 0),
        (29, D("44.83"), 15),
    ]
    assert (account.first_day, account.last_day) == (JAN_1, dt.date(2024, 2, 29))
    assert len(account.negative_days) == 15


def test_the_same_statement_twice_counts_once() -> None:
    twice = analyse(
        [
            records("a.pdf", "HDFC XXXX1111", "1000.00", SALARIED),
            records("a (1).pdf", "HDFC XXXX1111", "1000.00", SALARIED),
        ]
    )
    (account,) = twice.accounts
    assert account.statements == ("a.pdf",)
    assert [m.salary for m in account.months] == [D(50000), D(50000), D(52000)]
    assert account.foir == D("0.1974")


def line(description: str, amount: str = "-100", category: str = cat.UNCATEGORISED) -> Line:
    txn = Transaction(JAN_1, description, D(amount), None, 1, 0)
    entry = CategorisedTransaction(txn, category, None)
    return Line("a.pdf", 0, "A", entry, read_wording(description))


@pytest.mark.parametrize(
    ("description", "returned"),
    [
        ("RÜCKLASTSCHRIFT MANGELS DECKUNG", True),
        ("Lastschriftrückgabe Stadtwerke", True),
        ("PRELEVEMENT REJETE EDF", True),
        ("CHEQUE IMPAYÉ 1234567", True),
        ("RECIBO DEVUELTO IBERDROLA", True),
        ("CHEQUE DEVOLVIDO 000123", True),
        ("NACH RETURN HDFC LTD", True),
        ("O/W RTN CHQ 445566", True),
        ("UNPAID DIRECT DEBIT BRITISH GAS", True),
        ("AMAZON RETURN", False),
        ("RETURN TICKET LONDON", False),
        ("CHQ 000123 LANDLORD", False),
    ],
)
def test_return_wording_in_several_conventions(description: str, returned: bool) -> None:
    assert says_returned(line(description)) is returned


def test_a_charge_without_its_item_stands_for_a_return_and_directions_read_from_words() -> None:
    items = rows(
        "1000",
        [
            ("2024-01-03", "ECS RTN CHGS", "-295", cat.RETURNED, None),
            ("2024-01-03", "GST ON ECS RTN CHGS", "-53.10", cat.FEES_CHARGES, None),
            ("2024-01-20", "O/W CHQ RTN 445566", "-800", cat.RETURNED, None),
            ("2024-01-30", "SMS ALERT CHARGES", "-15", cat.FEES_CHARGES, None),
        ],
    )
    (account,) = analyse([records("a.pdf", "A", "1000", items)]).accounts
    alone, outward = account.returned
    assert alone.returned is None
    assert (alone.kind, alone.direction, alone.charged) == (
        ReturnKind.MANDATE,
        ReturnDirection.INWARD,
        D("348.10"),
    )
    assert outward.returned is not None
    assert outward.returned.amount == D(-800)
    assert (outward.kind, outward.direction, outward.charges) == (
        ReturnKind.CHEQUE,
        ReturnDirection.OUTWARD,
        (),  # the SMS charge is ten days later: not this return's
    )
    assert (account.months[0].returned_inward, account.months[0].returned_outward) == (1, 1)
    assert account.months[0].return_charges == D("348.10")


def test_balances_printed_once_a_day_and_an_opening_read_from_the_first_row() -> None:
    txns = [
        Transaction(dt.date(2024, 1, 2), "CARD TESCO", D("-10"), None, 1, 0),
        Transaction(dt.date(2024, 1, 2), "CARD BOOTS", D("-20"), D("70"), 1, 1),
        Transaction(dt.date(2024, 1, 4), "CARD TESCO", D("-100"), None, 1, 2),
    ]
    statement = StatementRecords("a.pdf", "A", categorise(txns))  # no period, no opening
    (account,) = analyse([statement]).accounts
    # No opening balance and none printed on the first row: the balance is known from the
    # second (70, after both rows of 2 Jan), so 2 Jan 70, 3 Jan 70, 4 Jan 70 - 100 = -30.
    (jan,) = account.months
    assert (jan.days, jan.average_balance, jan.minimum_balance, jan.negative_days) == (
        3,
        D("36.67"),
        D(-30),
        1,
    )


def test_an_empty_batch_and_a_statement_without_rows() -> None:
    assert analyse([]).accounts == []
    (account,) = analyse([StatementRecords("a.pdf", "A", [])]).accounts
    assert (account.months, account.first_day, account.foir, account.median_credit) == (
        [],
        None,
        None,
        None,
    )
