"""The Excel workbook of a statement batch: one sheet per question an analyst asks.

- `build.py`: `build_workbook`, every sheet in the order of `SHEETS`;
- `inputs.py`: what it is built from (`WorkbookInput`, `StatementInput`) and masking;
- `writer.py`: columns, running totals and the writer of typed, never-a-formula cells;
- `analysis.py`: the first sheets, the underwriting analysis (`statements.analysis`);
- `overview.py`, `flows.py`, `highlights.py`: the sheets (the batch itself; where money
  went and when; the rows singled out);
- `charts.py`: the charts those sheets carry.

What other files of the module use is importable from here.
"""

from touchstone.statements.workbook.build import SHEETS, build_workbook
from touchstone.statements.workbook.inputs import (
    ContinuityIssue,
    StatementInput,
    WorkbookInput,
    analysis_records,
)

__all__ = [
    "SHEETS",
    "ContinuityIssue",
    "StatementInput",
    "WorkbookInput",
    "analysis_records",
    "build_workbook",
]
