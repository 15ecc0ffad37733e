"""The appraiser's live page: served by the app, under a policy that runs only its own files."""

from __future__ import annotations

import httpx


async def test_the_live_page_is_served_under_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/app/appraisal/live")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert '<script src="/app/appraisal/live.js"' in page.text
    script = await client.get("/app/appraisal/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "RTCPeerConnection" in script.text
    assert "new WebSocket" in script.text
    assert "status.detected" in script.text  # what each frame showed: stone, ornament, ...
    assert 'id="detected"' in page.text
