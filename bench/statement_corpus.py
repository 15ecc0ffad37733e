"""Benchmark statement reading on the outside corpus: statements nobody here made.

Per part (development, held-out; see `bench/corpus.py` for the split):
- statements verified / statements that should verify (text layer, printed summary
  reconciles, truth lists transactions): goal >= 95% on the held-out part;
- transaction F1 on (date, signed amount) where truth lists transactions: goal >= 0.99;
- tampered copies that come out `verified`: goal 0. Each statement that verifies is edited
  for real (`bench.corpus.edit_pdf`: one word changed in its text object, the page's content
  written again by pdfium) and read again: one amount in a dated row, and the first printed
  opening/closing/total figure, each saved as an incremental update and as a rewritten file.
  An edit counts only where its control (the same page written again unchanged) reads as the
  original. Also reported: how many incremental edits the document signals flag
  (`incremental_updates` up by one), and a changed name (no balance can see it; only the
  signals can);
- text-layer pages per second per core (`extract_statement` end to end, one thread) against
  the raw pypdfium2 text floor (open, `get_text_range()` of every page) measured in the same
  run: goal >= 50.

Run from the checkout: `python -m bench.statement_corpus`. Exit status: 0 every goal met,
1 a goal missed, 2 the benchmark could not run (e.g. `../shared` is missing).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import pypdfium2 as pdfium

from bench.common import (
    RESULTS_DIR,
    BenchError,
    busy_share,
    describe_busy,
    finished_at,
    machine,
    run_main,
    verdict,
)
from bench.corpus import (
    DEVELOPMENT,
    HELD_OUT,
    CorpusStatement,
    Edit,
    available,
    edit_pdf,
    f1_counts,
    statements,
)
from touchstone.statements.domain import ExtractedStatement, StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement

RESULTS = RESULTS_DIR / "statement_corpus.json"
GOAL_VERIFIED = 0.95
GOAL_F1 = 0.99
GOAL_PAGES_PER_S = 50.0
LIMITS = ExtractionLimits()


@dataclass
class Part:
    should_verify: int = 0
    verified: int = 0
    wrongly_verified: list[str] = field(default_factory=list)
    matched: int = 0
    extracted: int = 0
    expected: int = 0
    tampered: int = 0
    tampered_verified: list[str] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    incremental_edits: int = 0
    incremental_flagged: int = 0
    names: int = 0
    names_flagged: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def verified_share(self) -> float:
        return self.verified / self.should_verify if self.should_verify else 1.0

    @property
    def f1(self) -> float:
        precision = self.matched / self.extracted if self.extracted else 0.0
        recall = self.matched / self.expected if self.expected else 0.0
        total = precision + recall
        return 2 * precision * recall / total if total else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "verified": self.verified,
            "should_verify": self.should_verify,
            "verified_share": round(self.verified_share, 3),
            "verified_but_should_not": self.wrongly_verified,
            "f1": round(self.f1, 4),
            "transactions": {
                "matched": self.matched,
                "extracted": self.extracted,
                "expected": self.expected,
            },
            "tampered_copies": self.tampered,
            "tampered_verified": self.tampered_verified,
            "edits_not_measured": self.not_measured,
            "incremental_edits_flagged": [self.incremental_flagged, self.incremental_edits],
            "names_changed_flagged": [self.names_flagged, self.names],
            "not_verified": self.misses,
        }


@dataclass
class Report:
    busy_before: float | None
    parts: dict[str, Part] = field(default_factory=dict)
    pages: int = 0
    extract_s: float = 0.0
    raw_text_s: float = 0.0
    finished: str = ""

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.extract_s if self.extract_s else 0.0

    @property
    def verdicts(self) -> dict[str, bool]:
        held = self.parts.get(HELD_OUT, Part())
        return {
            "held_out_verified": held.verified_share >= GOAL_VERIFIED,
            "f1": all(p.f1 >= GOAL_F1 for p in self.parts.values() if p.expected),
            "tampered_verified": not any(p.tampered_verified for p in self.parts.values()),
            "pages_per_s": self.pages_per_s >= GOAL_PAGES_PER_S,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "parts": {name: part.to_json() for name, part in self.parts.items()},
            "text_pages": self.pages,
            "pages_per_s_per_core": round(self.pages_per_s, 1),
            "raw_text_pages_per_s": round(self.pages / self.raw_text_s, 1),
            "pass": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            "statement reading on the outside corpus (extract_statement, one thread)",
            f"machine: {describe_busy(self.busy_before)} of the CPUs busy just before the run",
            "",
            f"{'part':<13}{'verified':>12}{'F1':>8}{'tampered verified':>20}",
        ]
        for name, part in self.parts.items():
            rows.append(
                f"{name:<13}{f'{part.verified}/{part.should_verify}':>12}{part.f1:>8.3f}"
                f"{f'{len(part.tampered_verified)}/{part.tampered}':>20}"
            )
            rows.append(
                f"  edits saved as incremental updates flagged by the document signals: "
                f"{part.incremental_flagged}/{part.incremental_edits}; changed names flagged: "
                f"{part.names_flagged}/{part.names}"
            )
            for miss in part.misses:
                rows.append(f"  not verified: {miss}")
            for skipped in part.not_measured:
                rows.append(f"  edit not measured: {skipped}")
            for wrong in part.wrongly_verified:
                rows.append(f"  verified but should not be: {wrong}")
        rows += [
            "",
            f"held-out verified >= {GOAL_VERIFIED:.0%} {verdict(passed['held_out_verified'])}; "
            f"F1 >= {GOAL_F1} {verdict(passed['f1'])}; 0 tampered verified "
            f"{verdict(passed['tampered_verified'])}",
            f"text-layer pages: {self.pages}, {self.pages_per_s:,.1f} pages/s per core "
            f"(goal >= {GOAL_PAGES_PER_S:.0f}) {verdict(passed['pages_per_s'])}; raw pypdfium2 "
            f"text floor {self.pages / self.raw_text_s:,.1f} pages/s",
        ]
        return "\n".join(rows)


def _raw_text_seconds(item: CorpusStatement) -> float:
    started = time.perf_counter()
    document = pdfium.PdfDocument(str(item.path), password=item.password)
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    document.close()
    return time.perf_counter() - started


def _has_text(data: bytes, password: str | None) -> tuple[bool, int]:
    document = pdfium.PdfDocument(data, password=password)
    try:
        pages = len(document)
        chars = 0
        for index in range(pages):
            textpage = document[index].get_textpage()
            chars += textpage.count_chars()
            textpage.close()
        return chars > 0, pages
    finally:
        document.close()


def _rows(statement: ExtractedStatement) -> list[tuple[object, ...]]:
    return [(t.date, t.amount, t.balance) for t in statement.transactions]


def _tamper(
    item: CorpusStatement, data: bytes, original: ExtractedStatement, part: Part, name: str
) -> None:
    """Real edited copies of a verified statement, read again."""
    for edit in Edit:
        for incremental in (True, False) if edit is not Edit.NAME else (True,):
            saved = "incremental" if incremental else "rewritten"
            edited = edit_pdf(
                data, item.password, edit, holder=original.meta.holder_name, incremental=incremental
            )
            if edited is None:
                part.not_measured.append(f"{name} ({edit}, {saved}): no word pdfium rewrites")
                continue
            control = extract_statement(edited.control, item.password, limits=LIMITS)
            if control.status is not original.status or _rows(control) != _rows(original):
                part.not_measured.append(
                    f"{name} ({edit}, {saved}): the page written again unchanged reads differently"
                )
                continue
            again = extract_statement(edited.data, item.password, limits=LIMITS)
            flagged = again.signals.incremental_updates > original.signals.incremental_updates
            where = f"{name} ({edit} {edited.before} -> {edited.after}, p{edited.page}, {saved})"
            if edit is Edit.NAME:
                part.names += 1
                part.names_flagged += flagged
                continue
            part.tampered += 1
            if incremental:
                part.incremental_edits += 1
                part.incremental_flagged += flagged
            if again.status is StatementStatus.VERIFIED:
                part.tampered_verified.append(where)


def run() -> Report:
    if not available():
        raise BenchError("../shared/corpora/statements is missing (CI has ../shared beside it)")
    report = Report(busy_share())
    for item in statements():
        part = report.parts.setdefault(item.part, Part())
        data = item.path.read_bytes()
        text, pages = _has_text(data, item.password)
        if not text:
            continue  # scans are OCR's business, not this figure's
        report.raw_text_s += _raw_text_seconds(item)
        started = time.perf_counter()
        statement = extract_statement(data, item.password, limits=LIMITS)
        report.extract_s += time.perf_counter() - started
        report.pages += pages
        truth = item.transactions
        if truth:
            matched, extracted, expected = f1_counts(statement, truth)
            part.matched += matched
            part.extracted += extracted
            part.expected += expected
        verified = statement.status is StatementStatus.VERIFIED
        name = f"{item.family}/{item.path.name}"
        if item.should_verify:
            part.should_verify += 1
            part.verified += verified
            if not verified:
                reason = statement.issues[0].message if statement.issues else statement.status
                part.misses.append(f"{name}: {reason}")
        elif verified and truth:
            part.wrongly_verified.append(name)
        if verified:
            _tamper(item, data, statement, part, name)
    for name in (DEVELOPMENT, HELD_OUT):
        report.parts.setdefault(name, Part())
    report.finished = finished_at()
    return report


def main() -> int:
    return run_main(run, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
