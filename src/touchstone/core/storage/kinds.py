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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal
from touchstone.core.storage.base import key_kind, validate_kind

FileVisibility = Callable[[AsyncSession, Principal, str], Awaitable[bool]]
"""(session in the caller's tenant, caller, key) -> may the caller see the object?"""


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


async def may_read_file(session: AsyncSession, principal: Principal, key: str) -> bool:
    """Whether `principal` may download `key` (in its own org) without a signed link."""
    kind = _KINDS.get(key_kind(key))
    if kind is None or not principal.can(kind.permission):
        return False
    return kind.visible is None or await kind.visible(session, principal, key)
