"""The outside corpus, reduced: the development part's text-layer statements read right, and
tampered copies never come out verified. The held-out part is only measured, by
`python -m bench.statement_corpus`, never asserted on here. Tampered copies are real edited
PDFs (`bench.corpus.edit_pdf`)."""

from __future__ import annotations

import pytest
from bench.corpus import (
    CORPUS,
    DEVELOPMENT,
    CorpusStatement,
    Edit,
    available,
    edit_pdf,
    f1_counts,
    statements,
)

from touchstone.statements.domain import StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement
from touchstone.statements.extraction.pdf import open_document
from touchstone.statements.extraction.signals import content_change, count_revisions

pytestmark = pytest.mark.skipif(
    not available(), reason="../shared/corpora/statements is not beside the checkout"
)
LIMITS = ExtractionLimits()


def _development() -> list[CorpusStatement]:
    return statements(DEVELOPMENT) if available() else []


def test_development_statements_verify_and_their_transactions_match() -> None:
    matched = extracted = expected = verified = should = 0
    for item in _development():
        if not item.transactions:
            continue
        statement = extract_statement(item.path.read_bytes(), item.password, limits=LIMITS)
        counts = f1_counts(statement, item.transactions)
        matched, extracted, expected = (
            a + b for a, b in zip((matched, extracted, expected), counts, strict=True)
        )
        if statement.signals.changed_pages:  # edited by its source: see the test below
            assert statement.status is not StatementStatus.VERIFIED, item.path.name
        elif item.should_verify:
            should += 1
            verified += statement.status is StatementStatus.VERIFIED
        else:
            assert statement.status is not StatementStatus.VERIFIED, item.path.name
    precision, recall = matched / extracted, matched / expected
    assert 2 * precision * recall / (precision + recall) >= 0.99
    assert should
    assert verified >= should - 1


@pytest.mark.parametrize("edit", [Edit.AMOUNT, Edit.TOTAL])
def test_edited_development_statements_never_verify(edit: Edit) -> None:
    """Really edited copies (one digit changed in the page's content, saved as an incremental
    update): the checks catch the figure, the document signals the saving."""
    tried = 0
    for item in _development():
        data = item.path.read_bytes()
        original = extract_statement(data, item.password, limits=LIMITS)
        if original.status is not StatementStatus.VERIFIED:
            continue
        edited = edit_pdf(data, item.password, edit)
        if edited is None:
            continue
        control = extract_statement(edited.control, item.password, limits=LIMITS)
        if control.status is not StatementStatus.VERIFIED:
            continue
        tried += 1
        statement = extract_statement(edited.data, item.password, limits=LIMITS)
        assert statement.status is not StatementStatus.VERIFIED, item.path.name
        assert statement.signals.incremental_updates == original.signals.incremental_updates + 1
        assert "incremental_updates" in {f.code for f in statement.signals.findings}
    assert tried >= 3


def test_a_changed_name_is_not_verified() -> None:
    """No balance can see a name: saved as an incremental update, the page's text differs
    from the file's first revision, which is still inside it."""
    tried = 0
    for item in _development():
        data = item.path.read_bytes()
        original = extract_statement(data, item.password, limits=LIMITS)
        if original.status is not StatementStatus.VERIFIED:
            continue
        edited = edit_pdf(data, item.password, Edit.NAME, holder=original.meta.holder_name)
        if edited is None:
            continue
        control = extract_statement(edited.control, item.password, limits=LIMITS)
        if control.status is not StatementStatus.VERIFIED:
            continue  # pdfium writing the page again alone changed what it says
        tried += 1
        statement = extract_statement(edited.data, item.password, limits=LIMITS)
        assert statement.status is StatementStatus.REVIEW, item.path.name
        assert statement.signals.changed_pages == [edited.page]
        assert "content_changed" in {f.code for f in statement.signals.findings}
    assert tried >= 2


def test_statements_their_source_edited_after_writing_are_not_verified() -> None:
    """Two of monopoly's example statements were edited in Acrobat after it wrote them (page
    1's statement date, and in v3 the card's name): each earlier revision is still in the
    file. Their figures add up; the edit alone keeps them from `verified`."""
    for name in ("example_statement_v2.pdf", "example_statement_v3.pdf"):
        item = next(i for i in _development() if i.path.name == name)
        statement = extract_statement(item.path.read_bytes(), item.password, limits=LIMITS)
        assert statement.status is StatementStatus.REVIEW, name
        assert statement.figure_issues == 0, name
        assert statement.signals.changed_pages == [1], name
        assert len(statement.issues) == 1, statement.issues


def test_a_signature_added_in_an_incremental_update_changes_no_page() -> None:
    """A real signed document (not a statement): the US Government Publishing Office signs
    its Federal Register PDFs in an update saved after iText wrote them."""
    path = CORPUS.parent / "docs" / "pdfplumber" / "federal-register-2020-17221.pdf"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in ../shared/corpora/docs")
    data = path.read_bytes()
    assert count_revisions(data) == (2, 1)
    document = open_document(data, None, LIMITS)
    try:
        assert content_change(document, data, None, LIMITS) is None
    finally:
        document.close()
