"""Benchmark the statement categoriser and the Excel workbook on 10,000 rows.

Goals (from the issue): `categorise()` of 10,000 transactions well under 1 s; the full
workbook (20 sheets, charts, formats) for those rows under 2 s. The baseline, measured in
the same run, is XlsxWriter writing the same rows as 8 plain columns to one sheet with no
formats: the ratio says what the formatting, the aggregate sheets and our own code cost on
top of the library's floor.

Each figure is the median of `--runs` runs, as CPU seconds of this process (what the job
worker needs from one core) and as wall seconds; the goals are judged on CPU seconds, since on
a shared machine the wall clock also counts time spent waiting for a core.

Run from the checkout: `python -m bench.statement_workbook`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TypeVar

import xlsxwriter

from bench.common import (
    RESULTS_DIR,
    BenchError,
    busy_share,
    describe_busy,
    finished_at,
    machine,
    run_main,
    say,
    verdict,
)
from bench.generators.transactions import transactions
from touchstone.statements.categorise import categorise
from touchstone.statements.domain import (
    CategorisedTransaction,
    PageReport,
    StatementMeta,
    StatementStatus,
    Transaction,
)
from touchstone.statements.workbook import SHEETS, StatementInput, WorkbookInput, build_workbook

RESULTS = RESULTS_DIR / "statement_workbook.json"
GOAL_CATEGORISE_S = 1.0
GOAL_WORKBOOK_S = 2.0
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    rows: int
    runs: int


@dataclass(frozen=True)
class Timing:
    cpu_s: float
    wall_s: float


def _timed(work: Callable[[], T], runs: int) -> tuple[Timing, T]:
    cpu: list[float] = []
    wall: list[float] = []
    result = work()  # a warm-up: imports, regex compilation, first allocations
    for _ in range(runs):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        result = work()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return Timing(statistics.median(cpu), statistics.median(wall)), result


def _baseline(rows: list[CategorisedTransaction]) -> bytes:
    """The library's floor: the same rows, 8 columns, one sheet, no formats, no extras."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet()
    for number, item in enumerate(rows):
        txn = item.transaction
        sheet.write_row(
            number,
            0,
            (
                "statement.pdf",
                txn.date.isoformat(),
                txn.description,
                item.counterparty or "",
                item.category,
                float(txn.debit),
                float(txn.credit),
                float(txn.balance or 0),
            ),
        )
    book.close()
    return buffer.getvalue()


def _report(rows: list[Transaction], categorised: list[CategorisedTransaction]) -> WorkbookInput:
    meta = StatementMeta(
        bank_name="Bench Bank",
        holder_name="Bench Holder",
        account_number_masked="XXXX0001",
        currency="INR",
        period_start=rows[0].date,
        period_end=rows[-1].date,
        opening_balance=(rows[0].balance or Decimal(0)) - rows[0].amount,
        closing_balance=rows[-1].balance,
    )
    pages = [PageReport(page=n, strategy="A", rows=40) for n in range(1, rows[-1].page + 1)]
    statement = StatementInput("bench.pdf", meta, StatementStatus.VERIFIED, categorised, pages)
    return WorkbookInput("bench", dt.datetime.now(dt.UTC), [statement])


@dataclass(frozen=True)
class Report:
    options: Options
    busy_before: float | None
    categorise: Timing
    workbook: Timing
    baseline: Timing
    workbook_bytes: int
    sheets: int
    recurring_rows: int
    finished: str

    @property
    def ratio(self) -> float:
        return self.workbook.cpu_s / self.baseline.cpu_s

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "categorise": self.categorise.cpu_s < GOAL_CATEGORISE_S,
            "workbook": self.workbook.cpu_s < GOAL_WORKBOOK_S,
            "sheets": self.sheets == len(SHEETS),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "options": asdict(self.options),
            "categorise": asdict(self.categorise),
            "workbook": asdict(self.workbook),
            "baseline_plain_xlsxwriter": asdict(self.baseline),
            "workbook_over_baseline_cpu": round(self.ratio, 3),
            "workbook_bytes": self.workbook_bytes,
            "sheets": self.sheets,
            "recurring_rows": self.recurring_rows,
            "goals_cpu_s": {"categorise": GOAL_CATEGORISE_S, "workbook": GOAL_WORKBOOK_S},
            "verdicts": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            f"statement workbook, {self.options.rows:,} rows, median of {self.options.runs} runs"
            f" (CPUs busy before: {describe_busy(self.busy_before)})",
            f"{'step':<34}{'CPU s':>8}{'wall s':>9}  goal",
            f"{'categorise()':<34}{self.categorise.cpu_s:>8.3f}{self.categorise.wall_s:>9.3f}"
            f"  < {GOAL_CATEGORISE_S:.1f} s CPU {verdict(passed['categorise'])}",
            f"{'build_workbook() (20 sheets)':<34}{self.workbook.cpu_s:>8.3f}"
            f"{self.workbook.wall_s:>9.3f}"
            f"  < {GOAL_WORKBOOK_S:.1f} s CPU {verdict(passed['workbook'])}",
            f"{'baseline: plain XlsxWriter, 8 cols':<34}{self.baseline.cpu_s:>8.3f}"
            f"{self.baseline.wall_s:>9.3f}  (no goal)",
            f"workbook / baseline (CPU): {self.ratio:.2f}x; {self.workbook_bytes:,} bytes, "
            f"{self.sheets} sheets ({verdict(passed['sheets'])}), "
            f"{self.recurring_rows} rows marked recurring",
        ]
        return "\n".join(rows)


def run(options: Options) -> Report:
    busy_before = busy_share()
    rows = transactions(options.rows)
    say(f"categorising {len(rows):,} rows, {options.runs} runs")
    categorise_timing, categorised = _timed(lambda: categorise(rows), options.runs)
    report = _report(rows, categorised)
    say("building the workbook and the baseline, alternately")
    workbook_runs: list[Timing] = []
    baseline_runs: list[Timing] = []
    data = b""
    for _ in range(options.runs):  # alternate, so drift in the machine's load hits both
        timing, data = _timed(lambda: build_workbook(report), 1)
        workbook_runs.append(timing)
        baseline_runs.append(_timed(lambda: _baseline(categorised), 1)[0])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheets = archive.read("xl/workbook.xml").count(b"<sheet ")
    if not sheets:
        raise BenchError("the workbook has no sheets")
    return Report(
        options=options,
        busy_before=busy_before,
        categorise=categorise_timing,
        workbook=_median(workbook_runs),
        baseline=_median(baseline_runs),
        workbook_bytes=len(data),
        sheets=sheets,
        recurring_rows=sum(item.recurring for item in categorised),
        finished=finished_at(),
    )


def _median(timings: list[Timing]) -> Timing:
    return Timing(
        statistics.median(t.cpu_s for t in timings), statistics.median(t.wall_s for t in timings)
    )


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statement_workbook",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000, help="transactions (default 10000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (default 5)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be positive")
    return Options(args.rows, args.runs)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
