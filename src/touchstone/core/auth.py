"""Who is calling: the principal, the credential it presented, and the authenticator seam.

`core` cannot import the identity module, so the identity module plugs its authenticator
into `app.state.authenticator`; every other module sees only `Principal`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from touchstone.core.errors import Forbidden

API_KEY_PREFIX = "tsk_"


@dataclass(frozen=True, slots=True)
class Credential:
    kind: Literal["access_token", "api_key"]
    secret: str


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "api_key", "system"]
    id: uuid.UUID
    """The user's id, the API key's id, or the nil UUID for the platform itself."""
    org_id: uuid.UUID
    role: str | None
    branch_id: uuid.UUID | None
    permissions: frozenset[str]
    session_id: uuid.UUID | None = None

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.id if self.kind == "user" else None

    @property
    def branch_scope(self) -> uuid.UUID | None:
        """The one branch a branch-bound member sees; None for org-wide admins (`org:write`)."""
        return None if "org:write" in self.permissions else self.branch_id

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def ensure(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"This needs the '{permission}' permission")


def log_context(principal: Principal) -> dict[str, str]:
    """What every log line of the principal's request carries about it."""
    return {"org_id": str(principal.org_id), "principal": f"{principal.kind}:{principal.id}"}


def system_principal(org_id: uuid.UUID, permissions: frozenset[str] = frozenset()) -> Principal:
    """The platform acting inside one org (relays, jobs, the CLI); audited as `system`."""
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        org_id=org_id,
        role=None,
        branch_id=None,
        permissions=permissions,
    )


@dataclass(frozen=True, slots=True)
class TenantEntry:
    """One statement that checks a credential and, only when it holds, enters its tenant.

    The statement (`%s` placeholders) sets `app.org_id` for the rest of the transaction
    through a SECURITY DEFINER function and returns one row, or none for a dead credential;
    `to_principal` turns that row into the caller or raises `Unauthorized`. The ORM session
    and the one-round-trip reader (`core.reads`) both authenticate through it, so there is a
    single definition of a valid credential.
    """

    sql: str
    params: tuple[Any, ...]
    to_principal: Callable[[Sequence[Any] | None], Principal]
    caller: str
    """Who presents the credential, known before any database work (a verified token's
    user, an API key's prefix and secret digest): the key of per-caller rate limits."""
    expires_at: float | None = None
    """When the credential lapses by itself (an access token's `exp`, a Unix time); None for
    one that lives until revoked (an API key). A live stream ends at this moment, since a
    request made after it would be refused (`core.stream_auth`)."""


class Authenticator(Protocol):
    def entry(self, credential: Credential) -> TenantEntry:
        """The entry statement for `credential`; raises `Unauthorized` for a malformed one
        before any database work."""
        ...
