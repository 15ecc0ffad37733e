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

# Gold-loan appraisal (seed 000): appraisers test and value, branch managers approve.
_APPRAISAL_READ = {"customers:read", "appraisals:read"}
_APPRAISER = _APPRAISAL_READ | {"customers:write", "appraisals:write", "purity:test"}
_APPRAISAL_ADMIN = _APPRAISER | {"appraisals:approve", "appraisal_settings:write", "devices:write"}
# Bank statements (seed 004): analysts (and API keys with these scopes) run batches.
_STATEMENTS_READ = {"statements:read"}
_ANALYST = _STATEMENTS_READ | {"statements:write", "statement_rules:write"}
_STATEMENTS_ADMIN = _ANALYST | {"usage:read", "billing:write"}

# Attendance (seed 003): teachers take attendance; enrolling faces (biometric data) and
# calibrating recognition are for whoever manages people, never for a viewer.
_ATTENDANCE_READ = {"attendance:read"}
_TEACHER = _ATTENDANCE_READ | {"attendance:mark"}
_ATTENDANCE_ADMIN = _TEACHER | {"attendance:write", "attendance:enrol", "attendance:settings"}

# AR content (seed 001): editors make contents and send them to review; publishing (and
# taking a published content down) is the org admin's.
_ARCONTENT_READ = {"arcontent:read"}
_AR_EDITOR = _ARCONTENT_READ | {"arcontent:write"}
_ARCONTENT_ADMIN = _AR_EDITOR | {"arcontent:publish"}

# Research (seed 002): analysts and editors add sources and run analyses; viewers read reports.
_RESEARCH_READ = {"research:read"}
_RESEARCHER = _RESEARCH_READ | {"research:write"}

_MODULE_ADMIN = (
    _APPRAISAL_ADMIN | _STATEMENTS_ADMIN | _ATTENDANCE_ADMIN | _ARCONTENT_ADMIN | _RESEARCHER
)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    # Platform permissions act on any org; no org role grants them (billing: issue 13).
    Role.PLATFORM_ADMIN: frozenset(
        _ORG_ADMIN | _MODULE_ADMIN | {"platform:orgs", "platform:billing"}
    ),
    Role.ORG_ADMIN: frozenset(_ORG_ADMIN | _MODULE_ADMIN),
    Role.BRANCH_MANAGER: frozenset(
        _READ_ORG | _APPRAISAL_READ | {"audit:read", "appraisals:approve"}
    ),
    Role.APPRAISER: frozenset(_READ_ORG | _APPRAISER),
    Role.ANALYST: frozenset(_READ_ORG | _ANALYST | _RESEARCHER),
    Role.TEACHER: frozenset(_READ_ORG | _TEACHER),
    Role.EDITOR: frozenset(_READ_ORG | _AR_EDITOR | _RESEARCHER),
    Role.VIEWER: frozenset(
        _READ_ORG
        | _APPRAISAL_READ
        | _STATEMENTS_READ
        | _ATTENDANCE_READ
        | _ARCONTENT_READ
        | _RESEARCH_READ
    ),
}

TOPIC_PERMISSIONS: dict[str, str] = {
    "appraisal": "appraisals:read",
    "statements": "statements:read",
    "attendance": "attendance:read",
    "arcontent": "arcontent:read",
    "research": "research:read",
}
"""What a live-event subscriber needs, by the topic's module (`appraisal.completed` ->
`appraisal`). A topic of an unlisted module would reach every member of the org, so a test
fails when the code publishes one."""

BRANCH_SCOPED_TOPICS: frozenset[str] = frozenset({"appraisal"})
"""Modules whose events are about a branch's objects: each event carries `branch_id`, and a
branch-bound member receives only its own branch's. One without `branch_id` reaches no
branch-bound member (fail closed), so a publisher that forgets it leaks nothing."""

ALL_PERMISSIONS: frozenset[str] = frozenset().union(*ROLE_PERMISSIONS.values())


def permissions_for(role: Role | str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(Role(role), frozenset())
