"""Bulk import from an XLSX workbook: the same per-row report as a CSV; bad files refused."""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import httpx
from openpyxl import Workbook

from tests.attendance.conftest import API, person
from tests.conftest import Tenant, assert_problem

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook(*rows: list[Any]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, tenant: Tenant, data: bytes, name: str = "class.xlsx"
) -> httpx.Response:
    return await client.post(
        f"{API}/people-imports", headers=tenant.headers, files={"file": (name, data, XLSX)}
    )


async def people(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    listed = await client.get(f"{API}/people", headers=tenant.headers)
    return [p["code"] for p in listed.json()["items"]]


async def test_a_class_imported_from_a_workbook_with_refused_rows_reported(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await client.post(f"{API}/groups", headers=tenant_a.headers, json={"name": "10A"})
    await person(client, tenant_a, "SV009", consent=False)
    data = workbook(
        ["code", "full_name", "contact", "group"],
        ["SV001", "An Nguyen", "+84 90 000 0001", "10A"],
        [1002, "Binh Tran", None, None],  # a numeric code reads as "1002", not "1002.0"
        [None, None, None, None],  # blank rows are skipped, as a CSV reader does
        ["SV001", "Again Same Code", None, "10A"],
        ["SV009", "Already There", None, None],
        ["SV003", "Unknown Group", None, "11B"],
        ["SV005", "Extra Cell", None, None, "surprise"],
        ["SV004", None, None, None],
    )
    imported = await upload(client, tenant_a, data)
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert report["created"] == 2
    assert [(r["line"], r["code"]) for r in report["refused"]] == [
        (5, "SV001"),
        (6, "SV009"),
        (7, "SV003"),
        (8, None),
        (9, "SV004"),
    ]
    assert [r["reason"] for r in report["refused"]] == [
        "the code exists",
        "the code exists",
        "no group named '11B'",
        "more fields than the header",
        "full_name: Field required",
    ]
    assert await people(client, tenant_a) == ["1002", "SV001", "SV009"]


def zip_with(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return out.getvalue()


async def test_bad_workbooks_are_refused_and_change_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    header = ["code", "full_name"]
    cases = [
        (b"", "class.xlsx", 422, "invalid_input"),  # empty
        (b"PK\x03\x04 not really a zip", "class.xlsx", 415, "unsupported_media_type"),
        (b"just,text\n", "class.xlsx", 415, "unsupported_media_type"),  # named .xlsx
        (zip_with({"word/document.xml": b"<w/>"}), "a.xlsx", 415, "unsupported_media_type"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, "old.xls", 415, None),
        (workbook(header, ["SV001", '=CONCAT("A","B")']), "f.xlsx", 422, "invalid_input"),
        (workbook(["name", "email"], ["A", "a@x"]), "h.xlsx", 422, "invalid_input"),
        (
            zip_with({"xl/workbook.xml": b"<", "xl/big.xml": b"0" * (21 * 1024 * 1024)}),
            "b.xlsx",
            422,
            None,
        ),
        (b"PK\x03\x04" + os.urandom(1_100_000), "big.xlsx", 413, None),
    ]
    for data, name, status, code in cases:
        response = await upload(client, tenant_a, data, name)
        body = assert_problem(response, status, code)
        assert body["detail"], name
    formula = await upload(client, tenant_a, workbook(header, ["SV001", "=1+1"]), "f.xlsx")
    assert "formula" in formula.json()["detail"]
    assert await people(client, tenant_a) == []
