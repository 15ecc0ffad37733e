"""Reading a class list from an XLSX workbook into the same rows as a CSV import.

The workbook is checked before openpyxl parses it: a ZIP whose parts would inflate past
`MAX_INFLATED_BYTES` (a "zip bomb") is refused from its directory alone. Formulas are
refused for the whole file: their values are whatever Excel last cached (or nothing, for a
generated file), so a row could silently import a stale or empty code.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from typing import Any

from openpyxl import load_workbook

from touchstone.core.errors import InvalidInput, UnsupportedMediaType

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""An old binary `.xls` (or any OLE2 file)."""
MAX_INFLATED_BYTES = 20 * 1024 * 1024
MAX_PARTS = 200
Rows = list[tuple[int, dict[str, str]]]


def is_workbook(data: bytes, filename: str | None) -> bool:
    """XLSX by its bytes (a ZIP) or by its name; a named `.xlsx` that is not one is still
    handled here, so it is refused as a workbook rather than misread as a CSV."""
    named = (filename or "").lower().endswith((".xlsx", ".xls"))
    return data.startswith((ZIP_MAGIC, OLE_MAGIC)) or named


def _check_package(data: bytes) -> None:
    if data.startswith(OLE_MAGIC):
        raise UnsupportedMediaType("An old .xls workbook: save it as .xlsx or CSV")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsupportedMediaType("Not an XLSX workbook") from None
    with archive:
        parts = archive.infolist()
        if "xl/workbook.xml" not in {part.filename for part in parts}:
            raise UnsupportedMediaType("A ZIP file, but not an XLSX workbook")
        if len(parts) > MAX_PARTS or sum(p.file_size for p in parts) > MAX_INFLATED_BYTES:
            raise InvalidInput(f"The workbook inflates past {MAX_INFLATED_BYTES} bytes")


def _text(value: Any) -> str:
    """A cell as the text a CSV would hold: whole numbers without `.0`, dates in ISO form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


def workbook_rows(data: bytes, columns: frozenset[str], max_rows: int) -> Rows:
    """(row number, values by header) of the first sheet; the header is row 1 and must name
    `code` and `full_name` among `columns`. Blank rows are skipped, as a CSV reader does."""
    _check_package(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors
        raise InvalidInput(f"Not a readable XLSX workbook: {type(exc).__name__}") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise InvalidInput("The workbook has no worksheet")
        lines = sheet.iter_rows()
        header_cells = next(lines, None)
        header = [_text(c.value) if c.value is not None else "" for c in header_cells or ()]
        while header and not header[-1]:
            header.pop()
        names = set(header)
        if not {"code", "full_name"} <= names or not names <= columns:
            raise InvalidInput("Row 1 must name code, full_name and optionally contact, group")
        rows: Rows = []
        for number, cells in enumerate(lines, start=2):
            if any(getattr(cell, "data_type", None) == "f" for cell in cells):
                raise InvalidInput(f"Row {number} holds a formula: paste values instead")
            values = [cell.value for cell in cells]
            if all(v is None or _text(v) == "" for v in values):
                continue
            if len(rows) == max_rows:
                raise InvalidInput(f"At most {max_rows} rows per import")
            extra = values[len(header) :]
            if any(v is not None and _text(v) for v in extra):
                rows.append((number, {"": "more fields than the header"}))
                continue
            row = {
                name: _text(value)
                for name, value in zip(header, values, strict=False)
                if name and value is not None and _text(value)
            }
            rows.append((number, row))
        return rows
    finally:
        workbook.close()
