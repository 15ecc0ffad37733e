"""Which module owns each kind of stored file, and what a caller needs to read one.

`files_router` serves every module's files but imports no module (DESIGN.md), so each
module declares its kinds here, next to the constant it stores them under:

    REPORT = file_kind("report", permission="statements:read")
    await storage.put(org_id, chunks, kind=REPORT)

A download without a signature then needs the kind's permission and, for objects that
belong to one branch, the module's `visible` check. A kind nobody declared is nobody's:
its files are only reachable through signed links the owning route hands out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from touchstone.core.storage.base import key_kind, validate_kind

if TYPE_CHECKING:
    from touchstone.core.auth import Principal
    from touchstone.core.reads import ItemQuery

FileVisibility = Callable[["Principal", str], tuple["ItemQuery", Mapping[str, Any]]]
"""(caller, key) -> a query, with its values, that returns a row when the caller may see
the object; it runs in the caller's tenant with the authentication, in one round trip."""


@dataclass(frozen=True, slots=True)
class FileKind:
    name: str
    permission: str
    visible: FileVisibility | None


_KINDS: dict[str, FileKind] = {}


def file_kind(name: str, *, permission: str, visible: FileVisibility | None = None) -> str:
    """Declare who may read files of kind `name`; returns `name` for `Storage.put`.

    `visible` narrows further (a branch-bound member sees only their branch's objects); leave
    it out only when every holder of `permission` may read every file of the kind.
    """
    kind = FileKind(validate_kind(name), permission, visible)
    if _KINDS.setdefault(name, kind) != kind:
        raise ValueError(f"storage kind {name!r} is already declared with other rules")
    return name


def kind_of(key: str) -> FileKind | None:
    """The declared kind of a stored key; None: only signed links reach it."""
    return _KINDS.get(key_kind(key))
