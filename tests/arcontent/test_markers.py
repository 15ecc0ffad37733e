"""Marker upload: sniffed image types, size limits and the quality gate, on the outside
markers of ../shared/corpora/ar and on a blank and a washed-out copy."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest

from tests.arcontent.conftest import (
    API,
    MARKERS,
    audit_actions,
    blank,
    content,
    corpus,
    flattened,
    needs_corpus,
    png,
    project,
    upload,
)
from tests.conftest import Tenant, assert_problem
from touchstone.arcontent import quality
from touchstone.arcontent.exceptions import BadMedia, MarkerRejected
from touchstone.core.db import Database

pytestmark = needs_corpus


@pytest.mark.parametrize("name", MARKERS)
def test_the_outside_markers_pass(name: str) -> None:
    measured = quality.measure(corpus(name))
    quality.check(measured)
    assert measured.score >= 70, measured


@pytest.mark.parametrize("data", [blank, flattened])
def test_blank_and_low_contrast_markers_are_refused(data: Callable[[], bytes]) -> None:
    measured = quality.measure(data())
    with pytest.raises(MarkerRejected, match="Contrast"):
        quality.check(measured)
    assert measured.score < 40


def test_a_picture_too_small_or_not_an_image_is_refused() -> None:
    with pytest.raises(BadMedia, match="short side"):
        quality.measure(png(np.zeros((100, 800, 3), np.uint8)))
    with pytest.raises(BadMedia, match="readable"):
        quality.measure(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)


async def test_a_marker_is_scored_stored_and_audited(
    client: httpx.AsyncClient, company: Tenant, database: Database
) -> None:
    content_id = await content(client, company, await project(client, company))
    accepted = await upload(client, company, content_id, "marker", corpus("mindar/card.png"))
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["marker_score"] >= 70
    assert body["marker_quality"]["keypoints"] >= 150
    assert body["marker_quality"]["width"] == 372
    detail = (await client.get(f"{API}/contents/{content_id}", headers=company.headers)).json()
    assert detail["marker"]["facts"]["width"] == 372
    stored = await client.get(detail["marker"]["url"])
    assert stored.content == corpus("mindar/card.png")
    assert await audit_actions(database, company, content_id) == [
        "arcontent.content.created",
        "arcontent.content.marker_set",
    ]


async def test_a_refused_marker_says_why_and_changes_nothing(
    client: httpx.AsyncClient, company: Tenant
) -> None:
    content_id = await content(client, company, await project(client, company))
    first = await upload(client, company, content_id, "marker", corpus("mindar/pictarize.jpg"))
    assert first.status_code == 200, first.text
    for data in (blank(), flattened()):
        refused = assert_problem(
            await upload(client, company, content_id, "marker", data), 422, "ar_marker_rejected"
        )
        assert "Contrast" in refused["detail"]
        assert refused["quality"]["score"] < 40
    assert_problem(await upload(client, company, content_id, "marker", b"plain text"), 422)
    assert_problem(await upload(client, company, content_id, "marker", b""), 422)
    detail = (await client.get(f"{API}/contents/{content_id}", headers=company.headers)).json()
    assert detail["marker_score"] == first.json()["marker_score"]


async def test_another_companys_content_is_not_found(
    client: httpx.AsyncClient, company: Tenant, other_company: Tenant
) -> None:
    content_id = await content(client, company, await project(client, company))
    card = corpus("mindar/card.png")
    assert_problem(await upload(client, other_company, content_id, "marker", card), 404)
    assert_problem(await upload(client, other_company, content_id, "video", card), 404)
    detail = (await client.get(f"{API}/contents/{content_id}", headers=company.headers)).json()
    assert detail["marker"] is None
