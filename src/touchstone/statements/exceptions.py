"""Typed failures of the statements module, rendered as problem+json by the core handler.

Each names what is wrong with the upload so a client can act on it (ask for the password,
send a real PDF, split a huge file) without reading the detail text.
"""

from __future__ import annotations

from touchstone.core.errors import AppError


class NotAPdf(AppError):
    status, code, title = 415, "not_a_pdf", "Not a PDF"


class CorruptPdf(AppError):
    status, code, title = 422, "corrupt_pdf", "The PDF is damaged or truncated"


class PasswordRequired(AppError):
    status, code, title = 422, "password_required", "The PDF is encrypted; a password is needed"


class WrongPassword(AppError):
    status, code, title = 422, "wrong_password", "The password does not open this PDF"


class TooManyPages(AppError):
    status, code, title = 413, "too_many_pages", "The PDF has more pages than allowed"


class QuotaExceeded(AppError):
    status, code, title = 402, "quota_exceeded", "Monthly page quota exceeded"


class TooManyFiles(AppError):
    status, code, title = 422, "too_many_files", "Too many files in one batch"
