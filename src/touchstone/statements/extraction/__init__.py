"""Bank-statement PDFs to transactions: the seed's strategies A-E, cleaning, balance checks.

A pure library (no database, no HTTP): `inspect_pdf` at upload time, `extract_statement` in
a job, `check_continuity` across the statements of one batch.
"""

from touchstone.statements.extraction.pdf import ExtractionLimits, PdfInfo
from touchstone.statements.extraction.pipeline import extract_statement, inspect_pdf
from touchstone.statements.extraction.validation import check_continuity

__all__ = ["ExtractionLimits", "PdfInfo", "check_continuity", "extract_statement", "inspect_pdf"]
