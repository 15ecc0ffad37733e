"""Who is calling: the principal, the credential it presented, and the authenticator seam.

`core` cannot import the identity module, so the identity module plugs its authenticator
into `app.state.authenticator`; every other module sees only `Principal`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

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

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def ensure(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"This needs the '{permission}' permission")


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


class Authenticator(Protocol):
    async def authenticate(self, session: AsyncSession, credential: Credential) -> Principal:
        """Verify the credential and put the session into the principal's tenant."""
        ...
