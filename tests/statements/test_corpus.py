"""The outside corpus, reduced: the development part's text-layer statements read right, and
tampered copies never come out verified. The held-out part is only measured, by
`python -m bench.statement_corpus`, never asserted on here."""

from __future__ import annotations

import pytest
from bench.corpus import (
    DEVELOPMENT,
    CorpusStatement,
    available,
    f1_counts,
    statements,
    tamper_amount,
    tamper_total,
    tampered,
)

from touchstone.statements.domain import StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement

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
        if item.should_verify:
            should += 1
            verified += statement.status is StatementStatus.VERIFIED
        else:
            assert statement.status is not StatementStatus.VERIFIED, item.path.name
    precision, recall = matched / extracted, matched / expected
    assert 2 * precision * recall / (precision + recall) >= 0.98
    assert should
    assert verified >= should - 1


@pytest.mark.parametrize("tamper", [tamper_amount, tamper_total])
def test_tampered_development_statements_never_verify(tamper: object) -> None:
    tried = 0
    for item in _development():
        data = item.path.read_bytes()
        if extract_statement(data, item.password, limits=LIMITS).status is not (
            StatementStatus.VERIFIED
        ):
            continue
        with tampered(tamper, 1) as changed:  # type: ignore[arg-type]
            statement = extract_statement(data, item.password, limits=LIMITS)
        if changed[0]:
            tried += 1
            assert statement.status is not StatementStatus.VERIFIED, item.path.name
    assert tried >= 3
