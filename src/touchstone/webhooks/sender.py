"""One signed POST to a webhook target: pinned to vetted addresses, redirects by hand, bounded.

Pinning: the request goes to `https://<vetted IP>:<port>/path` with `Host: <hostname>` and
the TLS `sni_hostname` extension set to the hostname, so the certificate is still verified
against the name the admin registered while the TCP connection can only reach an address
the policy approved. No proxy settings from the environment apply (`trust_env=False`).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass

import httpx

from touchstone.webhooks.exceptions import TargetRefused, TargetUnresolvable
from touchstone.webhooks.models import MAX_ERROR_LENGTH, MAX_RESPONSE_SNIPPET
from touchstone.webhooks.targets import Target, TargetPolicy

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Touchstone-Webhooks/1"


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    refused: bool = False
    """The policy refused the target (or a redirect): retrying cannot help."""

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def clean_text(value: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """Fit a receiver's text into a PostgreSQL text column (no NUL) of bounded length."""
    return value.replace("\x00", "\ufffd")[:limit]


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """Certificate and hostname verification on (built once: loading the CA bundle is slow)."""
    return httpx.create_ssl_context()


async def send_webhook(
    policy: TargetPolicy,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    deadline_seconds: float,
    tls_context: ssl.SSLContext | None = None,
) -> AttemptOutcome:
    """POST `body` to `url`; every hop is vetted by `policy`. Never raises for the target's faults.

    `deadline_seconds` bounds the whole attempt: DNS, connecting, each redirect, the reply.
    """
    current: str | httpx.URL = url
    status: int | None = None
    try:
        async with (
            asyncio.timeout(deadline_seconds),
            httpx.AsyncClient(
                verify=tls_context or default_tls_context(),
                trust_env=False,
                follow_redirects=False,
                timeout=deadline_seconds,
            ) as client,
        ):
            for hop in range(MAX_REDIRECTS + 1):
                try:
                    target = await policy.vet(current)
                except (TargetRefused, TargetUnresolvable) as exc:
                    if hop:
                        exc.detail = f"redirect to {current}: {exc.detail}"
                    raise
                status, location, snippet = await _post_pinned(client, target, body, headers)
                if status not in REDIRECT_STATUSES or not location:
                    error = None if 200 <= status < 300 else f"HTTP {status}"
                    return AttemptOutcome(status, error, snippet)
                if hop == MAX_REDIRECTS:
                    return AttemptOutcome(status, f"more than {MAX_REDIRECTS} redirects", snippet)
                try:
                    current = target.url.join(location)
                except httpx.InvalidURL:
                    return AttemptOutcome(status, "redirect to an invalid URL", snippet)
    except TargetRefused as exc:
        return AttemptOutcome(status, clean_text(f"refused: {exc.detail}"), refused=True)
    except TargetUnresolvable as exc:
        return AttemptOutcome(status, clean_text(exc.detail))
    except (TimeoutError, httpx.TimeoutException):
        return AttemptOutcome(status, f"timed out after {deadline_seconds:g} s")
    except httpx.HTTPError as exc:
        return AttemptOutcome(status, clean_text(f"{type(exc).__name__}: {exc}".rstrip(": ")))
    raise AssertionError("unreachable: the redirect loop always returns")


async def _post_pinned(
    client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str]
) -> tuple[int, str | None, str]:
    """POST to the vetted addresses in turn until one connects; the hostname stays in Host/SNI."""
    request_headers = {
        **headers,
        "Host": target.url.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
    }
    extensions = {}
    if target.url.scheme == "https" and not target.is_ip_literal:
        extensions["sni_hostname"] = target.host
    failure: httpx.ConnectError | None = None
    for address in target.addresses:
        pinned = target.url.copy_with(host=str(address), fragment=None)
        try:
            async with client.stream(
                "POST", pinned, content=body, headers=request_headers, extensions=extensions
            ) as response:
                snippet = await _read_snippet(response)
                return response.status_code, response.headers.get("location"), snippet
        except httpx.ConnectError as exc:
            failure = exc
    assert failure is not None
    raise failure


async def _read_snippet(response: httpx.Response) -> str:
    """At most 1 kB of the reply, raw (no decompression: nothing can expand it)."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= MAX_RESPONSE_SNIPPET:
            break
    text = bytes(data[:MAX_RESPONSE_SNIPPET]).decode("utf-8", "replace")
    return clean_text(text, MAX_RESPONSE_SNIPPET)
