"""The public verification page: what the certificate shows and whether it is genuine."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Final

from touchstone.appraisal.certificate.document import (
    ITEM_COLUMNS,
    CertificateData,
    certificate_digest,
    item_cells,
    party_rows,
    shown_fields,
    valuation_rows,
)

_PAGE_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.25rem .4rem}
.num{text-align:right}.ok{background:#e3f4e3;color:#145214}.bad{background:#fbe3e3;color:#7a1010}
.status{padding:.75rem 1rem;border-radius:.4rem;font-weight:600}code{word-break:break-all}
"""


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _cells(cells: Sequence[str], *, tag: str = "td", numeric_from: int = 99) -> str:
    numeric = ' class="num"'
    return "".join(
        f"<{tag}{numeric if index >= numeric_from else ''}>{html.escape(cell)}</{tag}>"
        for index, cell in enumerate(cells)
    )


def render_verification_html(data: CertificateData, digest_ok: bool) -> str:
    """The public verification page: what the certificate shows and whether it is genuine.

    Self-contained (inline CSS, no scripts, no external assets); every value is escaped.
    """
    shown = shown_fields(data)
    status = (
        '<p class="status ok">Genuine: the digest matches the certificate the bank issued.</p>'
        if digest_ok
        else '<p class="status bad">Not verified: the digest does not match this certificate.</p>'
    )
    items = "".join(
        f"<tr>{_cells(item_cells(number, item), numeric_from=2)}</tr>"
        for number, item in enumerate(shown["items"], start=1)
    )
    checks = "".join(
        f'<tr class="{"ok" if check["passed"] else "bad"}">'
        + _cells(["PASS" if check["passed"] else "FAIL", check["rule"], check["detail"]])
        + "</tr>"
        for check in shown["checks"]
    )
    body = [
        f"<h1>{html.escape(shown['bank'])}</h1>",
        f"<p>Branch: {html.escape(shown['branch'])}</p>",
        status,
        "<h2>Certificate</h2><table>",
        _rows(
            [
                ("Certificate No.", shown["certificate_number"]),
                ("Issued", shown["issued_at"]),
                *party_rows(shown),
            ]
        ),
        "</table><h2>Items</h2><table><tr>",
        _cells([title for title, _, _ in ITEM_COLUMNS], tag="th"),
        f"</tr>{items}</table><h2>Valuation</h2><table>",
        _rows(valuation_rows(shown)),
        f"</table><h2>Lending rule checks</h2><table>{checks}</table>",
        "<h2>Evidence</h2><ul>",
        "".join(
            f"<li>{html.escape(image['label'])} <code>{image['sha256']}</code></li>"
            for image in shown["evidence"]
        ),
        f"</ul><h2>Digest</h2><p><code>{certificate_digest(data)}</code></p>",
    ]
    title = html.escape(f"Certificate {shown['certificate_number']}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_PAGE_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )
