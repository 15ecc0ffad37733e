"""Underwriting analysis of a batch, as a lender reads statements (issue 15, item 4).

Pure functions over plain records (no database, no HTTP), so each figure is unit-tested
on hand-made rows; the API and the workbook feed them the batch's stored rows.

- `records.py`: what goes in (`StatementRecords`, `Settings`) and what comes out;
- `analyse.py`: `analyse`, per account and month;
- `balances.py`: end-of-day balances, quiet days carried;
- `income.py`: salary and its employer, loan repayments (EMIs);
- `returns.py`: bounced and returned items and their charges;
- `transfers.py`: money moved between the customer's own accounts;
- `vocabulary.py` (data) and `wording.py`: the words returns, charges and lenders are
  found by.

What other files of the module use is importable from here.
"""

from touchstone.statements.analysis.analyse import analyse
from touchstone.statements.analysis.records import (
    AccountAnalysis,
    BatchAnalysis,
    Income,
    Item,
    Month,
    Obligation,
    OwnTransfer,
    ReturnDirection,
    ReturnedItem,
    ReturnKind,
    Settings,
    StatementRecords,
)

__all__ = [
    "AccountAnalysis",
    "BatchAnalysis",
    "Income",
    "Item",
    "Month",
    "Obligation",
    "OwnTransfer",
    "ReturnDirection",
    "ReturnKind",
    "ReturnedItem",
    "Settings",
    "StatementRecords",
    "analyse",
]
