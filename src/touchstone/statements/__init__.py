"""Bank-statement analysis: PDF batches to verified, categorised transactions and a workbook."""
