"""Benchmark statement extraction: speed and accuracy on generated statements.

Goals (from the issue): text-layer statements at least 25 pages/s per core (median over the
statements, `extract_statement` end to end, single-threaded), every transaction right
(F1 = 1.0) and every statement `verified` on each text-layer layout; scanned pages through
OCR at F1 >= 0.98. The baseline, measured on the same statements in the same run, is raw
pypdfium2 text extraction (open, then `get_text_range()` of every page): the ratio says what
reading tables, cleaning and validating cost on top of reading the text at all.

A transaction matches when its date and signed amount are exact and its description is
close (difflib ratio >= 0.9).

Run from the checkout: `python -m bench.statement_extraction`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import difflib
import statistics
import sys
import time
from dataclasses import dataclass, field

import pypdfium2 as pdfium

from bench.common import (
    RESULTS_DIR,
    busy_share,
    describe_busy,
    finished_at,
    machine,
    run_main,
    say,
    verdict,
)
from bench.generators.statements import LAYOUTS, generate_statement, scan
from touchstone.statements.domain import ExtractedStatement, StatementStatus, Transaction
from touchstone.statements.engines.ocr import RapidOcrEngine
from touchstone.statements.extraction import ExtractionLimits, extract_statement

RESULTS = RESULTS_DIR / "statement_extraction.json"
GOAL_PAGES_PER_S = 25.0
GOAL_TEXT_F1 = 1.0
GOAL_SCANNED_F1 = 0.98
DESCRIPTION_RATIO = 0.9
SCANNED_LAYOUTS = ("ruled_uk", "borderless_signed", "european", "crdr_iso", "multiline_day_end")
LIMITS = ExtractionLimits()


@dataclass(frozen=True)
class Options:
    seeds: int
    scanned: int
    ocr_threads: int


@dataclass
class Accuracy:
    extracted: int = 0
    expected: int = 0
    matched: int = 0
    statements: int = 0
    verified: int = 0

    @property
    def precision(self) -> float:
        return self.matched / self.extracted if self.extracted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def add(self, statement: ExtractedStatement, truth: list[Transaction]) -> None:
        self.extracted += len(statement.transactions)
        self.expected += len(truth)
        self.matched += _matches(statement.transactions, truth)
        self.statements += 1
        self.verified += statement.status is StatementStatus.VERIFIED


def _matches(found: list[Transaction], truth: list[Transaction]) -> int:
    unmatched = list(truth)
    matched = 0
    for txn in found:
        for index, expected in enumerate(unmatched):
            if (txn.date, txn.amount) == (expected.date, expected.amount) and (
                difflib.SequenceMatcher(None, txn.description, expected.description).ratio()
                >= DESCRIPTION_RATIO
            ):
                del unmatched[index]
                matched += 1
                break
    return matched


@dataclass
class Report:
    options: Options
    busy_before: float | None
    finished: str = ""
    pages: int = 0
    statement_pages_per_s: list[float] = field(default_factory=list)
    statement_ms: list[float] = field(default_factory=list)
    extract_s: float = 0.0
    raw_text_s: float = 0.0
    accuracy: dict[str, Accuracy] = field(default_factory=dict)
    scanned_pages: int = 0
    scanned_s: float = 0.0
    scanned: Accuracy = field(default_factory=Accuracy)

    @property
    def median_pages_per_s(self) -> float:
        return statistics.median(self.statement_pages_per_s)

    @property
    def verdicts(self) -> dict[str, bool]:
        result = {
            "pages_per_s": self.median_pages_per_s >= GOAL_PAGES_PER_S,
            "text_f1": all(a.f1 >= GOAL_TEXT_F1 for a in self.accuracy.values()),
            "text_verified": all(a.verified == a.statements for a in self.accuracy.values()),
        }
        if self.scanned_pages:
            result["scanned_f1"] = self.scanned.f1 >= GOAL_SCANNED_F1
        return result

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "options": vars(self.options),
            "text_pages": self.pages,
            "pages_per_s_median": round(self.median_pages_per_s, 1),
            "pages_per_s_overall": round(self.pages / self.extract_s, 1),
            "statement_ms_median": round(statistics.median(self.statement_ms), 1),
            "statement_ms_p95": round(_p95(self.statement_ms), 1),
            "raw_text_pages_per_s": round(self.pages / self.raw_text_s, 1),
            "extract_over_raw_text": round(self.extract_s / self.raw_text_s, 2),
            "accuracy": {
                name: {
                    "precision": a.precision,
                    "recall": a.recall,
                    "f1": a.f1,
                    "verified": a.verified,
                    "statements": a.statements,
                }
                for name, a in {**self.accuracy, "scanned": self.scanned}.items()
            },
            "scanned_pages": self.scanned_pages,
            "scanned_s_per_page": self._scanned_per_page(),
            "pass": self.verdicts,
        }

    def _scanned_per_page(self) -> float | None:
        return round(self.scanned_s / self.scanned_pages, 2) if self.scanned_pages else None

    def table(self) -> str:
        passed = self.verdicts
        raw = self.pages / self.raw_text_s
        rows = [
            "statement extraction on generated statements (extract_statement, one thread)",
            f"machine: {describe_busy(self.busy_before)} of the CPUs busy just before the run",
            "",
            f"text layer: {len(self.statement_ms)} statements, {self.pages} pages",
            f"  pages/s per statement, median {self.median_pages_per_s:,.1f} "
            f"(goal >= {GOAL_PAGES_PER_S:.0f})  {verdict(passed['pages_per_s'])}",
            f"  per statement: median {statistics.median(self.statement_ms):.1f} ms, "
            f"p95 {_p95(self.statement_ms):.1f} ms; overall {self.pages / self.extract_s:,.1f} "
            "pages/s",
            f"  baseline raw pypdfium2 text: {raw:,.1f} pages/s; extraction costs "
            f"{self.extract_s / self.raw_text_s:.1f}x the raw text read",
            "",
            f"{'layout':<20}{'precision':>10}{'recall':>8}{'F1':>8}{'verified':>10}",
        ]
        for name, acc in {**self.accuracy, "scanned (OCR)": self.scanned}.items():
            if acc.statements:
                rows.append(
                    f"{name:<20}{acc.precision:>10.3f}{acc.recall:>8.3f}{acc.f1:>8.3f}"
                    f"{f'{acc.verified}/{acc.statements}':>10}"
                )
        rows.append(
            f"text layouts: F1 = {GOAL_TEXT_F1} {verdict(passed['text_f1'])}, all verified "
            f"{verdict(passed['text_verified'])}"
        )
        if self.scanned_pages:
            rows.append(
                f"scanned: {self._scanned_per_page()} s/page over {self.scanned_pages} pages "
                f"(OCR, {self.options.ocr_threads} thread(s)); F1 >= {GOAL_SCANNED_F1} "
                f"{verdict(passed['scanned_f1'])}"
            )
        return "\n".join(rows)


def _p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def _raw_text_seconds(pdf: bytes) -> float:
    started = time.perf_counter()
    document = pdfium.PdfDocument(pdf)
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    document.close()
    return time.perf_counter() - started


def run(options: Options) -> Report:
    report = Report(options, busy_share())
    say(f"generating {len(LAYOUTS) * options.seeds} text-layer statements")
    generated = [
        generate_statement(name, seed) for seed in range(options.seeds) for name in LAYOUTS
    ]
    extract_statement(generated[0].pdf, limits=LIMITS)  # imports and caches warm, not timed
    for statement in generated:
        report.raw_text_s += _raw_text_seconds(statement.pdf)
        started = time.perf_counter()
        extracted = extract_statement(statement.pdf, limits=LIMITS)
        elapsed = time.perf_counter() - started
        report.extract_s += elapsed
        report.pages += statement.pages
        report.statement_ms.append(elapsed * 1000)
        report.statement_pages_per_s.append(statement.pages / elapsed)
        report.accuracy.setdefault(statement.layout.name, Accuracy()).add(
            extracted, statement.transactions
        )
    if options.scanned:
        engine = RapidOcrEngine(threads=options.ocr_threads)
        for index in range(options.scanned):
            name = SCANNED_LAYOUTS[index % len(SCANNED_LAYOUTS)]
            source = generate_statement(name, 100 + index, transactions=14)
            truth = [t for t in source.transactions if t.page == 1]
            scanned = scan(source.pdf, seed=index, pages=1)
            say(f"OCR of scanned page {index + 1}/{options.scanned} ({name})")
            started = time.perf_counter()
            extracted = extract_statement(scanned, limits=LIMITS, ocr=engine)
            report.scanned_s += time.perf_counter() - started
            report.scanned_pages += 1
            report.scanned.add(extracted, truth)
    report.finished = finished_at()
    return report


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statement_extraction",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seeds", type=int, default=6, help="statements per text layout (default 6)"
    )
    parser.add_argument(
        "--scanned", type=int, default=2, help="scanned pages read by OCR (default 2; 0 skips)"
    )
    parser.add_argument("--ocr-threads", type=int, default=1, help="OCR threads (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help="2 statements per layout and 1 scanned page"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.scanned = 2, min(args.scanned, 1)
    if args.seeds < 1 or args.scanned < 0 or args.ocr_threads < 1:
        parser.error("--seeds and --ocr-threads must be positive, --scanned not negative")
    return Options(args.seeds, args.scanned, args.ocr_threads)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
