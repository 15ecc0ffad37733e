"""Synthetic test data: statement PDFs and touchstone-test video clips with ground truth."""
