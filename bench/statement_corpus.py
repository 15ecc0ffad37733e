"""Benchmark statement reading on the outside corpus: statements nobody here made.

Per part (development, held-out; see `bench/corpus.py` for the split):
- statements verified / statements that should verify (text layer, printed summary
  reconciles, truth lists transactions): goal >= 95% on the held-out part;
- transaction F1 on (date, signed amount) where truth lists transactions: goal >= 0.99;
- tampered copies that come out `verified`: goal 0. Each statement that verifies is read
  again twice with one page's words altered in memory: one amount in a dated row, and the
  first printed opening/closing/total figure;
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
    available,
    f1_counts,
    statements,
    tamper_amount,
    tamper_total,
    tampered,
)
from touchstone.statements.domain import StatementStatus
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
            for miss in part.misses:
                rows.append(f"  not verified: {miss}")
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
            for tamper in (tamper_amount, tamper_total):
                for page in range(1, pages + 1):
                    with tampered(tamper, page) as changed:
                        again = extract_statement(data, item.password, limits=LIMITS)
                    if changed[0]:
                        part.tampered += 1
                        if again.status is StatementStatus.VERIFIED:
                            part.tampered_verified.append(f"{name} ({tamper.__name__}, p{page})")
                        break
    for name in (DEVELOPMENT, HELD_OUT):
        report.parts.setdefault(name, Part())
    report.finished = finished_at()
    return report


def main() -> int:
    return run_main(run, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
