"""Named permissions and the roles that grant them.

Routes ask for a permission (`require("users:write")`), never for a role, so a role can be
reshaped here without touching a router. Module roles (appraiser, analyst, teacher, editor)
get their module's permissions as those modules land.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    ORG_ADMIN = "org_admin"
    BRANCH_MANAGER = "branch_manager"
    APPRAISER = "appraiser"
    ANALYST = "analyst"
    TEACHER = "teacher"
    EDITOR = "editor"
    VIEWER = "viewer"


_READ_ORG = {"org:read", "branches:read", "users:read"}
_ORG_ADMIN = _READ_ORG | {
    "org:write",
    "branches:write",
    "users:write",
    "api_keys:read",
    "api_keys:write",
    "audit:read",
    "webhooks:read",
    "webhooks:write",
}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.PLATFORM_ADMIN: frozenset(_ORG_ADMIN | {"platform:orgs"}),
    Role.ORG_ADMIN: frozenset(_ORG_ADMIN),
    Role.BRANCH_MANAGER: frozenset(_READ_ORG | {"audit:read"}),
    Role.APPRAISER: frozenset(_READ_ORG),
    Role.ANALYST: frozenset(_READ_ORG),
    Role.TEACHER: frozenset(_READ_ORG),
    Role.EDITOR: frozenset(_READ_ORG),
    Role.VIEWER: frozenset(_READ_ORG),
}

ALL_PERMISSIONS: frozenset[str] = frozenset().union(*ROLE_PERMISSIONS.values())


def permissions_for(role: Role | str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(Role(role), frozenset())
