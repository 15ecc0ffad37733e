"""The publishing workflow, its audit trail, the public URL and its QR codes."""

from __future__ import annotations

import cv2
import httpx
import numpy as np
from sqlalchemy import text

from tests.arcontent.conftest import (
    API,
    audit_actions,
    content,
    corpus,
    needs_corpus,
    project,
    upload,
)
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.db import Database
from touchstone.core.permissions import Role

pytestmark = needs_corpus


async def ready_content(client: httpx.AsyncClient, tenant: Tenant, database: Database) -> str:
    """A draft with a marker and a processed video (processing itself: test_processing)."""
    content_id = await content(client, tenant, await project(client, tenant))
    marked = await upload(client, tenant, content_id, "marker", corpus("mindar/card.png"))
    assert marked.status_code == 200, marked.text
    async with database.transaction(org_id=tenant.org_id) as session:
        await session.execute(
            text("update ar_contents set processing = 'ready' where id = :id"), {"id": content_id}
        )
    return content_id


async def move(
    client: httpx.AsyncClient, headers: dict[str, str], content_id: str, to: str
) -> httpx.Response:
    return await client.post(
        f"{API}/contents/{content_id}/transitions", headers=headers, json={"to": to}
    )


async def test_review_publish_and_archive_with_who_did_what(
    client: httpx.AsyncClient, company: Tenant, database: Database
) -> None:
    content_id = await ready_content(client, company, database)
    _, editor = await add_member(client, company, Role.EDITOR)
    admin = company.headers

    assert (await move(client, editor, content_id, "in_review")).status_code == 200
    assert_problem(await move(client, editor, content_id, "published"), 403)
    locked = await upload(client, company, content_id, "marker", corpus("mindar/pictarize.jpg"))
    assert_problem(locked, 409, "ar_content_locked")
    published = await move(client, admin, content_id, "published")
    assert published.status_code == 200, published.text
    assert published.json()["published_at"]

    detail = (await client.get(f"{API}/contents/{content_id}", headers=editor)).json()
    url = detail["public_url"]
    assert url.startswith("http://127.0.0.1:8000/ar/")
    assert len(url.rsplit("/", 1)[1]) >= 24

    png = await client.get(f"{API}/contents/{content_id}/qr.png", headers=editor)
    assert png.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    decoded, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert decoded == url
    svg = await client.get(f"{API}/contents/{content_id}/qr.svg", headers=editor)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<?xml")
    assert "<svg" in svg.text

    assert_problem(await move(client, editor, content_id, "archived"), 403)
    assert (await move(client, admin, content_id, "archived")).status_code == 200
    after = (await client.get(f"{API}/contents/{content_id}", headers=admin)).json()
    assert after["public_url"] is None
    assert_problem(await client.get(f"{API}/contents/{content_id}/qr.png", headers=admin), 409)
    restored = await move(client, editor, content_id, "draft")
    assert restored.json()["status"] == "draft"

    assert await audit_actions(database, company, content_id) == [
        "arcontent.content.created",
        "arcontent.content.marker_set",
        "arcontent.content.in_review",
        "arcontent.content.published",
        "arcontent.content.archived",
        "arcontent.content.draft",
    ]


async def test_steps_out_of_order_or_unready_are_refused_and_change_nothing(
    client: httpx.AsyncClient, company: Tenant, database: Database
) -> None:
    headers = company.headers
    bare = await content(client, company, await project(client, company, "Bare"))
    assert_problem(await move(client, headers, bare, "in_review"), 409, "ar_not_ready")
    assert_problem(await move(client, headers, bare, "published"), 409, "ar_bad_transition")
    assert_problem(await move(client, headers, bare, "deleted"), 422)
    assert_problem(
        await client.post(
            f"{API}/contents/{bare}/transitions", headers=headers, json={"to": "draft", "x": 1}
        ),
        422,
    )
    assert_problem(await client.get(f"{API}/contents/{bare}/qr.svg", headers=headers), 409)
    detail = (await client.get(f"{API}/contents/{bare}", headers=headers)).json()
    assert detail["status"] == "draft"
    assert await audit_actions(database, company, bare) == ["arcontent.content.created"]


async def test_another_companys_content_cannot_be_moved_or_scanned(
    client: httpx.AsyncClient, company: Tenant, other_company: Tenant, database: Database
) -> None:
    content_id = await ready_content(client, company, database)
    assert (await move(client, company.headers, content_id, "in_review")).status_code == 200
    assert (await move(client, company.headers, content_id, "published")).status_code == 200
    theirs = other_company.headers
    for response in (
        await move(client, theirs, content_id, "archived"),
        await client.get(f"{API}/contents/{content_id}/qr.png", headers=theirs),
        await client.get(f"{API}/contents/{content_id}/qr.svg", headers=theirs),
        await client.post(f"{API}/contents/{content_id}/reprocess", headers=theirs),
    ):
        assert_problem(response, 404, "ar_content_not_found")
    detail = (await client.get(f"{API}/contents/{content_id}", headers=company.headers)).json()
    assert detail["status"] == "published"
