"""Identity-specific dependencies: the login form, and the sign-in and reset rate limits."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Form, Request

from touchstone.core.config import Settings
from touchstone.core.errors import InvalidInput
from touchstone.core.ratelimit import RateLimiter, client_address
from touchstone.core.schemas import reject_control_characters


class LoginForm:
    """OAuth2 password form (so /docs' Authorize works) plus the org to sign in to.

    Swagger's form has no `org` field, so `client_id` is accepted as the org slug too.
    """

    def __init__(
        self,
        username: Annotated[str, Form(max_length=320)],
        password: Annotated[str, Form(max_length=256)],
        org: Annotated[str | None, Form(max_length=80)] = None,
        client_id: Annotated[str | None, Form(max_length=80)] = None,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    ) -> None:
        for value in (username, password, org, client_id):
            if value is not None:
                try:
                    reject_control_characters(value)
                except ValueError as exc:
                    raise InvalidInput("Control characters are not allowed") from exc
        self.username = username.strip().lower()
        self.password = password
        self.org = org or client_id or None


async def limit_logins(request: Request, form: Annotated[LoginForm, Depends()]) -> LoginForm:
    limiter: RateLimiter = request.app.state.rate_limiter
    settings: Settings = request.app.state.settings
    client = client_address(request)
    await limiter.hit(settings.login_rate_limit_per_ip, "login-ip", client)
    await limiter.hit(settings.login_rate_limit, "login", client, form.username)
    return form


RateLimitedLogin = Annotated[LoginForm, Depends(limit_logins)]


def _per_address(policy: str) -> Callable[[Request], Coroutine[Any, Any, None]]:
    async def limit(request: Request) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        settings: Settings = request.app.state.settings
        rule = settings.password_reset_rate_limit_per_ip
        await limiter.hit(rule, policy, client_address(request))

    return limit


PasswordResetRequestLimit = Depends(_per_address("reset-request-ip"))
PasswordResetConfirmLimit = Depends(_per_address("reset-confirm-ip"))
