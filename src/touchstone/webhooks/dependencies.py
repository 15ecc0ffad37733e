"""Webhook dependencies: the target policy (overridable in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from touchstone.core.deps import SettingsDep
from touchstone.webhooks.targets import TargetPolicy


async def target_policy(settings: SettingsDep) -> TargetPolicy:
    """Registration checks targets with the same policy deliveries obey."""
    return TargetPolicy.from_settings(settings)


TargetPolicyDep = Annotated[TargetPolicy, Depends(target_policy)]
