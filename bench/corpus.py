"""The outside statement corpus (`../shared/corpora/statements/`): files, truth, the split.

Nothing here was made by this project: the PDFs and their `*.truth.json` come from other
people's repositories (see the corpus's MANIFEST.md). They are read where they lie, never
copied into the repository.

The held-out part is chosen by bank family (the corpus's sub-folder), not by file, so that
near-identical files of one generator never sit on both sides: a family is held out when
the first byte of the SHA-256 of its folder name is even. No rule or threshold is chosen by
looking at the held-out results; they are reported separately.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from unittest import mock

from touchstone.statements.domain import ExtractedStatement
from touchstone.statements.extraction import pipeline
from touchstone.statements.extraction.layout import group_lines
from touchstone.statements.extraction.ledger import label_kind
from touchstone.statements.extraction.normalise import parse_amount, parse_date
from touchstone.statements.extraction.pdf import PageContent, Word

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "statements"
DEVELOPMENT = "development"
HELD_OUT = "held-out"


@dataclass(frozen=True)
class CorpusStatement:
    path: Path
    family: str
    truth: dict[str, object]

    @property
    def part(self) -> str:
        return part_of(self.family)

    @property
    def password(self) -> str | None:
        value = self.truth.get("password")
        return value if isinstance(value, str) else None

    @property
    def transactions(self) -> list[tuple[dt.date, Decimal]]:
        listed = self.truth.get("transactions") or []
        assert isinstance(listed, list)
        return [
            (dt.date.fromisoformat(t["date"]), Decimal(str(t["amount"])).normalize())
            for t in listed
        ]

    @property
    def should_verify(self) -> bool:
        """A text-layer statement whose printed summary reconciles and whose transactions
        sum to it: a correct reading must come out `verified`. The others (a summary that
        does not reconcile, or contradicts the table per the truth's notes, a scan, a
        summary-only guide) must not."""
        notes = str(self.truth.get("notes") or "").lower()
        computed = self.truth.get("computed_from_transactions")
        sums = not isinstance(computed, dict) or computed.get(
            "opening_plus_net_equals_closing", True
        )
        return (
            self.truth.get("summary_reconciles") is not False
            and bool(self.truth.get("transactions"))
            and "contradicts" not in notes
            and "do not sum" not in notes
            and "image-only" not in notes
            and bool(sums)
        )


def part_of(family: str) -> str:
    return HELD_OUT if hashlib.sha256(family.encode()).digest()[0] % 2 == 0 else DEVELOPMENT


def available() -> bool:
    return CORPUS.is_dir()


def statements(part: str | None = None) -> list[CorpusStatement]:
    found = []
    for pdf in sorted(CORPUS.glob("*/*.pdf")):
        truth_file = pdf.with_name(pdf.stem + ".truth.json")
        if not truth_file.is_file():
            continue
        item = CorpusStatement(pdf, pdf.parent.name, json.loads(truth_file.read_text()))
        if part is None or item.part == part:
            found.append(item)
    return found


def f1_counts(
    statement: ExtractedStatement, truth: list[tuple[dt.date, Decimal]]
) -> tuple[int, int, int]:
    """(matched, extracted, expected) on (date, signed amount) as multisets."""
    found = Counter((t.date, t.amount.normalize()) for t in statement.transactions)
    expected = Counter(truth)
    return sum((found & expected).values()), sum(found.values()), sum(expected.values())


Tamper = Callable[[list[Word]], list[Word]]


def _changed(word: Word) -> Word:
    """The same figure with its last digit changed."""
    text = word.text
    index = max(i for i, c in enumerate(text) if c.isdigit())
    digit = str((int(text[index]) + 1) % 10)
    return Word(text[:index] + digit + text[index + 1 :], word.x0, word.x1, word.top, word.bottom)


def tamper_amount(words: list[Word]) -> list[Word]:
    """Change one amount in the middle of the page's dated rows."""
    candidates = []
    for line in group_lines(list(words)):
        if line.words and parse_date(line.words[0].text) is not None:
            amounts = [w for w in line.words if parse_amount(w.text) is not None]
            if len(amounts) >= 1 and parse_amount(amounts[0].text) != 0:
                candidates.append(amounts[0])
    return _replace(words, candidates)


def tamper_total(words: list[Word]) -> list[Word]:
    """Change the figure of the first printed opening/closing/total line."""
    candidates = []
    for line in group_lines(list(words)):
        figures = [w for w in line.words if parse_amount(w.text) is not None]
        label = " ".join(w.text for w in line.words if w not in figures)
        if figures and label_kind(label) not in (None, "total"):
            candidates.append(figures[-1])
    return _replace(words, candidates[:1])


def _replace(words: list[Word], candidates: list[Word]) -> list[Word]:
    if not candidates:
        return words
    target = candidates[len(candidates) // 2]
    return [_changed(w) if w is target else w for w in words]


@contextmanager
def tampered(tamper: Tamper, page_number: int) -> Iterator[list[bool]]:
    """Extraction with one page's words altered in memory (the PDF is untouched); yields a
    flag that says whether a change was made."""
    original = pipeline.read_page
    changed = [False]

    def read_page(*args: object, **kwargs: object) -> PageContent:
        content: PageContent = original(*args, **kwargs)  # type: ignore[arg-type]
        if content.number == page_number and not changed[0]:
            words = tamper(content.words)
            changed[0] = words != content.words
            content.words = words
        return content

    with mock.patch.object(pipeline, "read_page", read_page):
        yield changed
