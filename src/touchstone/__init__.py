"""Touchstone: one multi-tenant platform, many modules."""
