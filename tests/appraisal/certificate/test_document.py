"""The certificate PDF, its digest and the verification page, read back as a user would."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from touchstone.appraisal.certificate.document import (
    CertificateData,
    CertificateItem,
    PurityRecord,
    certificate_digest,
    certificate_items,
    mask_id_number,
    mask_phone,
)
from touchstone.appraisal.certificate.page import (
    render_not_verified_html,
    render_verification_html,
)
from touchstone.appraisal.certificate.pdf import render_certificate
from touchstone.appraisal.valuation import (
    GoldRates,
    ItemForValuation,
    LendingPolicy,
    RuleCheck,
    assess,
)

D = Decimal
VERIFY_URL = "https://touchstone.example/verify/TS-2026-000042?d=3f1c"
AADHAAR = "2345 6789 0123"
PHONE = "+91 98765 43210"
IST = timezone(timedelta(hours=5, minutes=30))
FORMAT_1_DIGEST = "0f8b94bf723e6be85066b9094ee26135fa0937b8592332ceda142b6b4260bac3"
"""`make_data(format_version=1, id_document_type="Aadhaar")` digested by the format 1 code
(before format 2 existed): a certificate issued then must verify for ever."""


def needles_test(item_number: int = 1) -> PurityRecord:
    return PurityRecord(
        item_number=item_number,
        karat="22K",
        reason="steady reading",
        engine="classical",
        detector_versions={"classical": "classical-3 opencv-4.11.0", "reading": "scene-2"},
        reference_karats=("18K", "22K"),
        started_at=datetime(2026, 11, 22, 4, 41, 7, tzinfo=UTC),
        stage_seconds={"rubbing": D("12.345"), "acid": D("8.1")},
        reaction={"18K": D("0.1"), "22K": D("0.452"), "ornament": D("0.47")},
    )


def absolute_test(item_number: int = 2) -> PurityRecord:
    return dataclasses.replace(
        needles_test(item_number),
        karat="18K",
        reference_karats=(),
        reaction={"ornament": D("0.15")},
    )


def jpeg(color: str, size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG")
    return out.getvalue()


def make_data(item_count: int = 10, **changes: Any) -> CertificateData:
    karats = ["22K", "18K", "24K", "inconclusive"]
    items = [
        ItemForValuation(
            item_id=f"i{n}",
            item_type=["ring", "chain", "bangle", "coin", "necklace"][n % 5],
            count=1 + n % 3,
            gross_weight_g=D("10.500") + n,
            deduction_g=D("0.250"),
            karat=karats[n % 4],
        )
        for n in range(item_count)
    ]
    valuation = assess(items, GoldRates(D("7200.00")), LendingPolicy(), D("250000.00"))
    data = CertificateData(
        certificate_number="TS-2026-000042",
        issued_at=datetime(2026, 11, 22, 10, 30, tzinfo=IST),
        bank_name="Bharat Gold Bank",
        branch_name="Anna Nagar, Chennai",
        customer_name="Lakshmi Narayanan",
        customer_phone=PHONE,
        id_document_type="aadhaar",
        id_document_number=AADHAAR,
        appraiser_name="Ravi Appraiser",
        approver_name="Meena Manager",
        items=certificate_items(valuation.items, {"i0": D("0.93"), "i1": D("0.875")}),
        gold_rate_24k_per_g=D("7200.00"),
        total_gross_weight_g=valuation.total_gross_weight_g,
        total_net_weight_g=valuation.total_net_weight_g,
        total_value=valuation.total_value,
        ltv_cap=valuation.ltv_cap,
        eligible_max_loan=valuation.eligible_max_loan,
        requested_amount=valuation.requested_amount,
        checks=valuation.checks,
        evidence=[("front", jpeg("gold")), ("scale", jpeg("orange")), ("acid", jpeg("red"))],
        purity_tests=[needles_test(1), absolute_test(2)],
        approver_role="branch_manager",
        approved_at=datetime(2026, 11, 22, 4, 55, tzinfo=UTC),
    )
    return dataclasses.replace(data, **changes)


def pdf_text(pdf: bytes) -> str:
    document = pdfium.PdfDocument(pdf)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


def image_count(pdf: bytes) -> int:
    document = pdfium.PdfDocument(pdf)
    return sum(
        len(list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))) for page in document
    )


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return make_data()


@pytest.fixture(scope="module")
def pdf(data: CertificateData) -> bytes:
    return render_certificate(data, verify_url=VERIFY_URL)


def test_certificate_is_a_deterministic_pdf(data: CertificateData, pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert render_certificate(make_data(), verify_url=VERIFY_URL) == pdf
    assert b"/CreationDate (D:20261122103000+05'30')" in pdf


def test_pdf_shows_the_certificate(data: CertificateData, pdf: bytes) -> None:
    text = pdf_text(pdf)
    for shown in [
        "Bharat Gold Bank",
        "Branch: Anna Nagar, Chennai",
        "TS-2026-000042",
        "22 Nov 2026 10:30 UTC+05:30",
        "Lakshmi Narayanan",
        "Ravi Appraiser",
        "Meena Manager",
        "necklace",
        "inconclusive",
        "93.0",
        "87.5",
        "₹7,200.00/g",
        "₹2,50,000.00",
        "Requested loan within eligibility",
        "FAIL",
        "front",
        "acid",
        VERIFY_URL,
    ]:
        assert shown in text
    assert "₹7,34,400.00" in text  # total value of the ten items


def test_pdf_prints_the_digest(data: CertificateData, pdf: bytes) -> None:
    digest = certificate_digest(data)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    text = pdf_text(pdf)
    assert digest[:32] in text
    assert digest[32:] in text


def test_qr_code_holds_the_verify_url(pdf: bytes) -> None:
    document = pdfium.PdfDocument(pdf)
    page = document[len(document) - 1]
    rendered = page.render(scale=3, grayscale=True).to_numpy()
    decoded, points, _ = cv2.QRCodeDetector().detectAndDecode(rendered)
    assert points is not None
    assert decoded == VERIFY_URL


def test_pdf_never_shows_the_full_id_or_phone_number(data: CertificateData, pdf: bytes) -> None:
    text = pdf_text(pdf)
    assert "Aadhaar XXXXXXXX0123" in text
    assert "XXXXXXXX3210" in text
    digest = certificate_digest(data)
    compact = re.sub(r"\s", "", text.replace(digest[:32], "").replace(digest[32:], ""))
    for secret in (AADHAAR.replace(" ", ""), "23456789", "9876543210", "98765"):
        assert secret not in compact
    assert AADHAAR.replace(" ", "").encode() not in pdf


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("2345 6789 0123", "XXXXXXXX0123"),
        ("abcde1234f", "XXXXXX234F"),
        ("1234567", "XXXXXXX"),
        ("", ""),
    ],
)
def test_id_numbers_keep_only_the_last_four_and_only_when_long(raw: str, masked: str) -> None:
    assert mask_id_number(raw) == masked


def test_phone_keeps_only_the_last_four_digits() -> None:
    assert mask_phone("+91 98765-43210") == "XXXXXXXX3210"
    assert mask_phone("12345") == "XXXXX"


def test_digest_is_stable(data: CertificateData) -> None:
    assert certificate_digest(data) == certificate_digest(make_data())
    # Decimals with the same shown value digest alike: 7200 and 7200.00 print the same.
    assert certificate_digest(dataclasses.replace(data, gold_rate_24k_per_g=D(7200))) == (
        certificate_digest(data)
    )


def _changed_item(data: CertificateData) -> list[CertificateItem]:
    first, *rest = data.items
    return [dataclasses.replace(first, value=first.value + D("0.01")), *rest]


def _flipped_check(data: CertificateData) -> list[RuleCheck]:
    first, *rest = data.checks
    return [dataclasses.replace(first, passed=not first.passed), *rest]


@pytest.mark.parametrize(
    "change",
    [
        {"certificate_number": "TS-2026-000043"},
        {"issued_at": datetime(2026, 11, 22, 10, 31, tzinfo=IST)},
        {"bank_name": "Bharat Gold Bank Ltd"},
        {"branch_name": "Adyar, Chennai"},
        {"customer_name": "Lakshmi Narayan"},
        {"customer_phone": "+91 98765 43211"},
        {"id_document_type": "PAN"},
        {"id_document_number": "2345 6789 0124"},
        {"appraiser_name": "Ravi A."},
        {"approver_name": "Meena M."},
        {"gold_rate_24k_per_g": D("7200.01")},
        {"total_gross_weight_g": D("150.001")},
        {"total_net_weight_g": D("147.499")},
        {"total_value": D("734400.01")},
        {"ltv_cap": D("0.80")},
        {"eligible_max_loan": D("550800.01")},
        {"requested_amount": None},
        {"approver_role": "org_admin"},
        {"approved_at": datetime(2026, 11, 22, 4, 56, tzinfo=UTC)},
        {"purity_tests": [needles_test(1)]},
        {"purity_tests": [needles_test(1), dataclasses.replace(absolute_test(2), reason="x")]},
        {"evidence": [("front", jpeg("gold")), ("scale", jpeg("orange"))]},
        {"evidence": [("front", jpeg("gold")), ("scale", jpeg("orange")), ("acid", jpeg("blue"))]},
        {"evidence": [("back", jpeg("gold")), ("scale", jpeg("orange")), ("acid", jpeg("red"))]},
    ],
)
def test_digest_changes_with_any_shown_field(data: CertificateData, change: dict[str, Any]) -> None:
    assert certificate_digest(dataclasses.replace(data, **change)) != certificate_digest(data)


def test_digest_changes_with_items_and_checks(data: CertificateData) -> None:
    digest = certificate_digest(data)
    assert certificate_digest(dataclasses.replace(data, items=_changed_item(data))) != digest
    assert certificate_digest(dataclasses.replace(data, items=data.items[:-1])) != digest
    assert certificate_digest(dataclasses.replace(data, checks=_flipped_check(data))) != digest


def test_digest_ignores_what_masking_hides(data: CertificateData) -> None:
    # Hidden digits are not shown, so they must not be recoverable from the digest either.
    hidden_changed = dataclasses.replace(
        data, id_document_number="9999 9999 0123", customer_phone="+91 11111 13210"
    )
    assert certificate_digest(hidden_changed) == certificate_digest(data)


def test_issued_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_data(issued_at=datetime(2026, 11, 22, 10, 30))


def test_non_latin_names_are_romanised_not_dropped() -> None:
    data = make_data(
        item_count=2,
        bank_name="भारतीय स्टेट बैंक",
        branch_name="சென்னை",
        customer_name="முருகன் 李 Ñúñez",
    )
    pdf = render_certificate(data, verify_url=VERIFY_URL)
    text = pdf_text(pdf)
    assert "Bhaaratiiya" in text
    assert "Cennai" in text
    assert "Murukan ? Ñúñez" in text
    assert "the verification page shows every name as" in text
    page = render_verification_html(data)
    assert "முருகன் 李 Ñúñez" in page
    assert "भारतीय स्टेट बैंक" in page


@pytest.mark.parametrize(
    ("name", "printed"),
    [
        ("राम कुमार", "Raama Kumaara"),  # vowel signs replace the inherent a
        ("முருகன்", "Murukan"),  # the virama removes it
        ("ಕನ್ನಡ", "Kannada"),
        ("ਪੰਜਾਬ", "Panjaaba"),
        ("४२ 😀", "42 ?"),
    ],
)
def test_romanisation_of_names_the_font_cannot_draw(name: str, printed: str) -> None:
    pdf = render_certificate(make_data(item_count=1, customer_name=name), verify_url=VERIFY_URL)
    assert f"Customer {printed}\n" in pdf_text(pdf).replace("\r", "")


def test_latin_only_certificate_has_no_romanisation_note(pdf: bytes) -> None:
    assert "romanised" not in pdf_text(pdf)


def test_unreadable_evidence_is_skipped_and_large_images_are_shrunk() -> None:
    noise = np.random.default_rng(7).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    big = io.BytesIO()
    Image.fromarray(noise).save(big, format="JPEG", quality=95)
    evidence = [
        ("garbage", b"not a jpeg"),
        ("truncated", jpeg("gold")[:200]),
        ("big", big.getvalue()),
        ("empty", b""),
    ]
    pdf = render_certificate(make_data(evidence=evidence), verify_url=VERIFY_URL)
    assert image_count(pdf) == 2  # the big photo and the QR code
    assert pdf_text(pdf).count("image unreadable") == 3
    assert len(pdf) < len(big.getvalue()) / 4


def test_many_items_and_long_text_flow_onto_more_pages() -> None:
    data = make_data(
        item_count=60,
        customer_name="X" * 300,
        checks=[RuleCheck("ltv_tier", False, "word " * 200)],
    )
    pdf = render_certificate(data, verify_url=VERIFY_URL)
    document = pdfium.PdfDocument(pdf)
    assert len(document) >= 3
    text = pdf_text(pdf)
    assert "necklace" in text
    assert certificate_digest(data)[:32] in text


def test_verification_page_escapes_everything() -> None:
    data = make_data(
        customer_name='<script>alert("x")</script>',
        bank_name="A & B <b>Bank</b>",
        evidence=[("<img src=x onerror=alert(1)>", jpeg("gold"))],
    )
    page = render_verification_html(data)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "A &amp; B &lt;b&gt;Bank&lt;/b&gt;" in page
    assert page.count("<img") == 1  # the evidence image, as a data: URL
    assert "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 1
    assert sources[0].startswith("data:image/jpeg;base64,")
    assert 'alt="&lt;img src=x onerror=alert(1)&gt;"' in page
    assert certificate_digest(data) in page
    assert "XXXXXXXX0123" in page
    assert AADHAAR not in page
    assert AADHAAR.replace(" ", "") not in page


def test_verification_page_says_whether_the_digest_matched(data: CertificateData) -> None:
    genuine = render_verification_html(data)
    forged = render_not_verified_html(data.certificate_number)
    assert "Genuine" in genuine
    assert "Not verified" not in genuine
    assert "₹7,34,400.00" in genuine
    assert "Not verified" in forged
    assert "Genuine" not in forged
    for private in ("Lakshmi", "3210", "0123", "₹", "Bharat", "Meena", "22K", "<img"):
        assert private not in forged


def test_certificate_items_carry_the_purity_confidence(data: CertificateData) -> None:
    assert data.items[0].confidence == D("0.93")
    assert data.items[2].confidence is None
    assert data.items[3].karat == "inconclusive"
    assert data.items[3].value == D("0.00")


def test_digest_records_the_time_zone_shown() -> None:
    utc = make_data(issued_at=datetime(2026, 11, 22, 5, 0, tzinfo=UTC))
    ist = make_data(issued_at=datetime(2026, 11, 22, 10, 30, tzinfo=IST))
    # The same instant printed in two zones is shown differently, so it digests differently.
    assert certificate_digest(utc) != certificate_digest(ist)


def test_a_format_1_certificate_digests_as_it_was_issued() -> None:
    """Certificates issued before the auditor's fields keep verifying, and theirs are not
    shown for them (format 1 had none)."""
    old = make_data(format_version=1, id_document_type="Aadhaar")
    assert certificate_digest(old) == FORMAT_1_DIGEST
    page = render_verification_html(old)
    assert "Purity tests" not in page
    assert "Conf. %:" not in page
    assert "requested_within_eligibility" in page
    assert certificate_digest(make_data()) != FORMAT_1_DIGEST
    with pytest.raises(ValueError, match="format"):
        make_data(format_version=3)


AUDITOR_TEXT = [
    "Aadhaar XXXXXXXX0123",
    "Conf. %: how sure the live touchstone test was of the karat it read",
    "Item 1",
    "Result 22K (steady reading)",
    "compared with reference needles of 18K, 22K",
    "absolute reading (no reference needles), lower confidence",
    "classical (classical: classical-3 opencv-4.11.0; reading: scene-2)",
    "22 Nov 2026 10:11 UTC+05:30",  # the test's start, in the time zone
    "rubbing 12.3 s, acid 8.1 s",
    "the ornament's streak kept 47.0% under the acid; "
    "the needles' streaks kept 18K 10.0%, 22K 45.2%",
    "the ornament's streak kept 15.0% under the acid",
    "Purity accepted for lending",
    "Jewellery weight per borrower",
    "Loan-to-value cap",
    "Requested loan within eligibility",
    "Branch manager",
    "22 Nov 2026 10:25 UTC+05:30",  # approved
    "Signature of the approving manager",
]


def test_pdf_answers_what_an_auditor_asks(pdf: bytes) -> None:
    text = " ".join(pdf_text(pdf).split())
    for shown in AUDITOR_TEXT:
        assert shown in text
    for rule in ("karat_accepted", "jewellery_weight_limit", "ltv_tier"):
        assert rule not in text


def test_verification_page_shows_the_same_and_the_images(data: CertificateData) -> None:
    page = render_verification_html(data)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    signed_on_paper = AUDITOR_TEXT[-1]
    for shown in [*AUDITOR_TEXT, "Issued 22 Nov 2026 10:30 UTC+05:30"]:
        assert (shown in text) is (shown != signed_on_paper)
    sources = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert [base64.b64decode(source) for source in sources] == [j for _, j in data.evidence]
    assert "2026-11-22T10:30:00+05:30" not in page  # the issue time as printed, not ISO


def test_unreadable_evidence_is_named_not_inlined() -> None:
    data = make_data(item_count=1, evidence=[("broken", b"not a jpeg"), ("ok", jpeg("gold"))])
    page = render_verification_html(data)
    assert page.count("<img") == 1
    assert "image unreadable" in page


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("voter_id", "Voter ID"), ("pan", "PAN"), ("driving_licence", "Driving licence")],
)
def test_the_id_document_type_is_named_properly(stored: str, shown: str) -> None:
    pdf = render_certificate(
        make_data(item_count=1, id_document_type=stored), verify_url=VERIFY_URL
    )
    assert f"ID document {shown} XXXXXXXX0123" in pdf_text(pdf)
