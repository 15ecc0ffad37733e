"""Base models: inputs refuse unknown fields and control characters; outputs read ORM rows."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def reject_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _walk_strings(value: Any) -> None:
    if isinstance(value, str):
        reject_control_characters(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_strings(key)
            _walk_strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _walk_strings(item)


class InputModel(BaseModel):
    """Every request body derives from this: no extra fields, no control characters.

    Smuggled `org_id`, `role` or `id` fields are refused by `extra="forbid"`; NUL bytes would
    otherwise reach PostgreSQL and fail there as a 500.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        _walk_strings(data)
        return data


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


Flag = StrictBool
"""A JSON boolean and nothing else: lax pydantic reads `0`, `"no"` or `"off"` as false, so a
typo or a crafted value would deactivate something. (FastAPI validates the parsed Python
object, so `strict` cannot be switched on for whole models without refusing UUID strings.)"""
Count = StrictInt
"""A JSON integer: not `"5"`, not `true`."""


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


Trimmed = AfterValidator(str.strip)
"""Drop surrounding whitespace *after* the length checks, so the documented `maxLength` holds
for the value as sent. Secrets, passwords and patterns are never trimmed: a space is part of
them."""
NonBlank = AfterValidator(_not_blank)
"""`Trimmed`, and nothing but whitespace is refused."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), NonBlank]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,78}[a-z0-9]$")]
PlainText = Annotated[str, AfterValidator(reject_control_characters)]
