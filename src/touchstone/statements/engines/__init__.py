"""Pluggable providers of the statements module (OCR), each behind a typed Protocol."""
