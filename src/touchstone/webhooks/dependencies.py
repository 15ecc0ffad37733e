"""Webhook dependencies: the settings and the target policy (overridable in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from touchstone.core.config import Settings
from touchstone.webhooks.targets import TargetPolicy


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def target_policy(settings: SettingsDep) -> TargetPolicy:
    """Registration checks targets with the same policy deliveries obey."""
    return TargetPolicy.from_settings(settings)


TargetPolicyDep = Annotated[TargetPolicy, Depends(target_policy)]
