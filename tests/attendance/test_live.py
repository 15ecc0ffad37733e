"""The live camera over a real socket: frames made from the faces corpus (person_02 enrolled,
person_00 a stranger), marking once after N frames, late arrival, bad frames, the frame rate,
refusals, and the socket closing when its credential ends."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.attendance.conftest import API, enrol, jpeg, needs_corpus, person, photo
from tests.conftest import Tenant, add_member, committed_tenant, login
from tests.core.events.conftest import LiveServer, serve
from touchstone.attendance.engines import default_engine
from touchstone.attendance.engines.liveness import LIVENESS_ENGINES, Liveness, liveness_engine
from touchstone.attendance.live.run import MAX_FRAME_BYTES, Sightings, frame_scene
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.main import create_app

ENROLLED, STRANGER = "deepface_person_02", "deepface_person_00"


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


def frame(relative: str, side: int = 640) -> bytes:
    """A corpus photo as a camera would send it: JPEG, longest side `side`."""
    image = cv2.imdecode(np.frombuffer(photo(relative), np.uint8), cv2.IMREAD_COLOR)
    scale = side / max(image.shape[:2])
    return jpeg(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def url(server: LiveServer, session_id: str, headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return f"{server.ws_url}{API}/sessions/{session_id}/camera?access_token={token}"


async def a_class(
    client: httpx.AsyncClient, tenant: Tenant, late_after: datetime | None
) -> tuple[str, str]:
    """A group with one enrolled member, and a session of it: (session id, person id)."""
    headers = tenant.headers
    group = await client.post(f"{API}/groups", headers=headers, json={"name": "Door A"})
    group_id = group.json()["id"]
    member = await person(client, tenant, "SV001")
    assert (await enrol(client, tenant, member, photo(f"{ENROLLED}/1.jpg"))).status_code == 201
    await client.post(
        f"{API}/groups/{group_id}/members", headers=headers, json={"person_ids": [member]}
    )
    body: dict[str, Any] = {"label": "Morning"}
    if late_after is not None:  # the session started an hour before its cut-off
        body["starts_at"] = (late_after - timedelta(hours=1)).isoformat()
        body["late_after_minutes"] = 60
    created = await client.post(f"{API}/groups/{group_id}/sessions", headers=headers, json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"], member


async def exchange(ws: ClientConnection, data: bytes | str) -> dict[str, Any]:
    await ws.send(data)
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 60))
    return message


def test_sightings_count_within_the_window_only() -> None:
    now = datetime.now(UTC)
    sightings = Sightings(required=3, window=10.0)
    person = uuid.uuid4()
    assert sightings.add(person, 0.0, now) == 1
    assert sightings.add(person, 4.0, now + timedelta(seconds=4)) == 2
    assert sightings.add(person, 12.0, now + timedelta(seconds=12)) == 2  # the first fell out
    assert sightings.first(person) == now + timedelta(seconds=4)


@needs_corpus
async def test_a_member_is_marked_once_after_three_frames_and_a_stranger_never(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    cut_off = datetime.now(UTC) - timedelta(minutes=5)
    session_id, member = await a_class(live_client, tenant, cut_off)
    async with connect(url(server, session_id, tenant.headers), max_size=None) as ws:
        statuses, marked = [], []
        for number in (2, 3, 4, 5):
            message = await exchange(ws, frame(f"{ENROLLED}/{number}.jpg"))
            assert message["type"] == "frame", message
            (face,) = message["faces"]
            assert (face["person_id"], face["code"]) == (member, "SV001")
            assert face["liveness"] == "not_assessed"
            statuses.append(face["status"])
            marked.append(message["marked"])
        assert statuses == ["recognised", "recognised", "marked", "present"]
        assert [len(m) for m in marked] == [0, 0, 1, 0]
        just = marked[2][0]
        assert (just["person_id"], just["status"], just["liveness"]) == (
            member,
            "late",
            "not_assessed",
        )

        for number in (2, 3, 4):
            message = await exchange(ws, frame(f"{STRANGER}/{number}.jpg"))
            (face,) = message["faces"]
            assert face["status"] == "unknown"
            assert "person_id" not in face
            assert "full_name" not in face
            assert message["marked"] == []

        # A frame that is no image, or too large, gets an error and the stream goes on.
        huge_header = bytearray(jpeg(np.zeros((32, 32, 3), np.uint8)))
        sof = huge_header.index(b"\xff\xc0")
        huge_header[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
        for data, code in (
            (b"this is not an image", "invalid_frame"),
            (bytes(huge_header), "frame_too_large"),
            (b"\xff\xd8\xff" + b"\0" * MAX_FRAME_BYTES, "frame_too_large"),
            ("hello", "invalid_input"),
        ):
            message = await exchange(ws, data)
            assert (message["type"], message["code"]) == ("error", code), message
        assert await exchange(ws, json.dumps({"type": "ping"})) == {"type": "pong"}
        message = await exchange(ws, frame(f"{ENROLLED}/6.jpg"))
        assert message["faces"][0]["status"] == "present"

    detail = (await live_client.get(f"{API}/sessions/{session_id}", headers=tenant.headers)).json()
    assert detail["late_after"] is not None
    (present,) = detail["present"]
    assert (present["person_id"], present["source"]) == (member, "camera")
    assert (present["status"], present["liveness"]) == ("late", "not_assessed")
    assert detail["absent"] == []


@needs_corpus
async def test_the_org_sets_frames_required_and_on_time_is_not_late(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers
    default = await live_client.get(f"{API}/camera-settings", headers=headers)
    assert default.json() == {"frames_required": 3, "window_seconds": 10.0, "is_default": True}
    bad = await live_client.put(
        f"{API}/camera-settings", headers=headers, json={"frames_required": 0, "window_seconds": 5}
    )
    assert bad.status_code == 422
    changed = await live_client.put(
        f"{API}/camera-settings", headers=headers, json={"frames_required": 1, "window_seconds": 5}
    )
    assert changed.json()["is_default"] is False
    on_time = datetime.now(UTC) + timedelta(hours=1)
    session_id, member = await a_class(live_client, tenant, on_time)
    async with connect(url(server, session_id, headers), max_size=None) as ws:
        message = await exchange(ws, frame(f"{ENROLLED}/2.jpg"))
    assert message["faces"][0]["status"] == "marked"
    assert message["marked"][0]["person_id"] == member
    assert message["marked"][0]["status"] == "present"
    _, viewer = await add_member(live_client, tenant, Role.VIEWER)
    assert (await live_client.get(f"{API}/camera-settings", headers=viewer)).status_code == 403


async def test_frames_faster_than_the_analysis_are_dropped_not_queued(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    group = await live_client.post(f"{API}/groups", headers=tenant.headers, json={"name": "Gate"})
    session = await live_client.post(
        f"{API}/groups/{group.json()['id']}/sessions", headers=tenant.headers, json={"label": "Day"}
    )
    blank = jpeg(np.full((240, 320, 3), 90, np.uint8))
    sent = 12
    async with connect(url(server, session.json()["id"], tenant.headers)) as ws:
        for _ in range(sent):  # all at once: at most 5 frames a second are analysed
            await ws.send(blank)
        messages: list[dict[str, Any]] = []
        while not messages or messages[-1]["frames_dropped"] + len(messages) < sent:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    assert 0 < len(messages) < sent
    assert messages[-1]["frames_received"] == sent
    assert all(m["faces"] == [] for m in messages)


async def test_refused_without_a_credential_for_a_viewer_and_for_another_org(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant, committed: Database
) -> None:
    group = await live_client.post(f"{API}/groups", headers=tenant.headers, json={"name": "G"})
    session = await live_client.post(
        f"{API}/groups/{group.json()['id']}/sessions", headers=tenant.headers, json={"label": "S"}
    )
    session_id = session.json()["id"]
    base = f"{server.ws_url}{API}/sessions/{session_id}/camera"
    _, viewer = await add_member(live_client, tenant, Role.VIEWER)
    for refused in (base, f"{base}?access_token=garbage", url(server, session_id, viewer)):
        with pytest.raises(InvalidStatus, match="403"):
            async with connect(refused):
                pass
    other = await committed_tenant(committed, server.app.state.settings, live_client)
    answers = []
    for target in (session_id, str(uuid.uuid4())):  # another org's session, and none at all
        async with connect(url(server, target, other.headers)) as ws:
            answers.append(json.loads(await ws.recv()))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    assert answers[0] == answers[1]
    assert answers[0]["code"] == "attendance_session_not_found"


@pytest.fixture
async def quick_server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    """Streams re-check their credential every 0.2 s; access tokens last 3 s."""
    quick = settings.model_copy(
        update={"stream_recheck_seconds": 0.2, "access_token_ttl_seconds": 3}
    )
    async with serve(quick, committed) as running:
        yield running


async def _ends_with(ws: ClientConnection) -> tuple[dict[str, Any], int, str]:
    """The socket says why it ends, then closes (nothing needs to be sent meanwhile)."""
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None
    return message, closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.parametrize("how", ["logout", "expiry"])
async def test_the_camera_socket_closes_when_its_credential_ends(
    quick_server: LiveServer,
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    how: str,
) -> None:
    group = await live_client.post(f"{API}/groups", headers=tenant.headers, json={"name": "K"})
    session = await live_client.post(
        f"{API}/groups/{group.json()['id']}/sessions", headers=tenant.headers, json={"label": "S"}
    )
    app = create_app(quick_server.app.state.settings, database=quick_server.app.state.database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as short_lived:
        token = await login(short_lived, tenant.admin_email)
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(url(quick_server, session.json()["id"], headers)) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}
            if how == "logout":
                logout = await short_lived.post("/api/v1/auth/logout", headers=headers)
                assert logout.status_code == 204
            message, code, reason = await _ends_with(ws)
    assert (message["code"], code, reason) == ("unauthorized", 4401, "unauthorized")
    if how == "expiry":
        assert message["detail"] == "The access token has expired"


class AlwaysSpoof:
    """A registered liveness engine that judges every face a presentation attack."""

    name = "always-spoof"

    def assess(self, image: object, face: object) -> Liveness:
        return Liveness.SPOOF


@needs_corpus
async def test_a_liveness_engine_is_pluggable_and_a_spoof_is_never_marked(
    settings: Settings,
    committed: Database,
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(LIVENESS_ENGINES, AlwaysSpoof.name, AlwaysSpoof())
    await live_client.put(
        f"{API}/camera-settings",
        headers=tenant.headers,
        json={"frames_required": 1, "window_seconds": 5},
    )
    session_id, member = await a_class(live_client, tenant, None)
    checked = settings.model_copy(update={"liveness_engine": AlwaysSpoof.name})
    async with serve(checked, committed) as server:
        async with connect(url(server, session_id, tenant.headers), max_size=None) as ws:
            message = await exchange(ws, frame(f"{ENROLLED}/2.jpg"))
        (face,) = message["faces"]
        assert (face["status"], face["liveness"]) == ("spoof_suspected", "spoof")
        assert message["marked"] == []
    unknown = settings.model_copy(update={"liveness_engine": "nobody-registered-this"})
    async with (
        serve(unknown, committed) as server,
        connect(url(server, session_id, tenant.headers)) as ws,
    ):
        refusal = json.loads(await ws.recv())
    assert refusal["code"] == "unknown_liveness_engine"
    detail = (await live_client.get(f"{API}/sessions/{session_id}", headers=tenant.headers)).json()
    assert [p["id"] for p in detail["absent"]] == [member]


@needs_corpus
async def test_two_cameras_on_one_session_mark_a_member_once(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await live_client.put(
        f"{API}/camera-settings",
        headers=tenant.headers,
        json={"frames_required": 1, "window_seconds": 5},
    )
    session_id, member = await a_class(live_client, tenant, None)
    target = url(server, session_id, tenant.headers)
    async with connect(target, max_size=None) as door, connect(target, max_size=None) as kiosk:
        seen = await asyncio.gather(
            exchange(door, frame(f"{ENROLLED}/2.jpg")), exchange(kiosk, frame(f"{ENROLLED}/3.jpg"))
        )
    assert sorted(m["faces"][0]["status"] for m in seen) == ["marked", "present"]
    assert sum(len(m["marked"]) for m in seen) == 1
    detail = (await live_client.get(f"{API}/sessions/{session_id}", headers=tenant.headers)).json()
    assert [p["person_id"] for p in detail["present"]] == [member]


@needs_corpus
def test_two_cameras_analysing_at_once_see_what_one_would() -> None:
    """dlib's objects are not safe to share between threads (a concurrent run once found
    52 faces in a frame of one); the engine serialises its calls."""
    engine, liveness = default_engine(), liveness_engine()
    frames = [frame(f"{ENROLLED}/2.jpg"), frame(f"{ENROLLED}/4.jpg")]
    alone = [frame_scene(engine, liveness, data) for data in frames]
    seen: list[list[tuple[int, float]]] = [[], []]

    def analyse(index: int) -> None:
        for _ in range(4):
            scene = frame_scene(engine, liveness, frames[index])
            drift = float(np.abs(scene.faces[0].embedding - alone[index].faces[0].embedding).max())
            seen[index].append((len(scene.faces), drift))

    threads = [threading.Thread(target=analyse, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [[(1, 0.0)] * 4, [(1, 0.0)] * 4]
