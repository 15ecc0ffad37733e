"""The live purity test over a real socket: WebSocket end to end, bad frames, disconnect and
resume, and WebRTC with an aiortc client in this process."""

from __future__ import annotations

import asyncio
import fractions
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from bench.generators.touchstone_clips import ClipSpec, TouchstoneClip
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.appraisal.conftest import API, RING, Bank, Staff, make_bank
from tests.appraisal.onnx_models import constant_output_model, yolo_output
from tests.conftest import Tenant, assert_problem, committed_tenant
from tests.core.events.conftest import LiveServer, serve
from tests.core.events.test_events import collect, emit, subscribed
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent

CLIP_22K = TouchstoneClip(ClipSpec(karat=Karat.K22, seed=7))


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


def token(bank: Bank) -> str:
    return bank.appraiser.headers["Authorization"].removeprefix("Bearer ")


def timestamped(frame: np.ndarray[Any, Any], seconds: float) -> bytes:
    """A clip frame as the WebSocket takes it: `TSF1`, the clip time, then the JPEG."""
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return b"TSF1" + struct.pack(">d", seconds) + jpeg


async def new_test(bank: Bank) -> tuple[str, str, str]:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    response = await bank.client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    assert response.status_code == 201, response.text
    return appraisal_id, item_id, response.json()["id"]


async def stream(ws: ClientConnection, start: int, stop: int) -> dict[str, Any]:
    """Send clip frames in lockstep (one status per frame); the last status received."""
    status: dict[str, Any] = {}
    for index in range(start, stop):
        frame, _ = CLIP_22K.frame(index)
        await ws.send(timestamped(frame, CLIP_22K.timestamp(index)))
        status = json.loads(await ws.recv())
        assert status["type"] == "purity_status", status
        if status.get("saved"):
            break
    return status


def ws_url(server: LiveServer, test_id: str, bank: Bank) -> str:
    return f"{server.ws_url}{API}/purity-sessions/{test_id}/ws?access_token={token(bank)}"


async def test_websocket_purity_test_end_to_end(
    server: LiveServer, live_bank: Bank, committed: Database
) -> None:
    appraisal_id, _item_id, test_id = await new_test(live_bank)
    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        status = await stream(ws, 0, len(CLIP_22K))
        assert status["saved"] is True
        assert status["karat"] == "22K"
        assert status["stage"] == "completed"
        assert status["appraisal_status"] == "purity_completed"
        with pytest.raises(Exception, match="completed"):
            await ws.recv()
    client, headers = live_bank.client, live_bank.appraiser.headers
    test = (await client.get(f"{API}/purity-sessions/{test_id}", headers=headers)).json()
    assert test["status"] == "completed"
    assert test["karat"] == "22K"
    assert set(test["stage_timings"]) == {"rubbing", "acid", "completed"}
    assert "classical" in test["detector_versions"]
    assert test["frames_processed"] >= 30
    assert test["reference_karats"] == []
    assert test["method"] == "absolute"
    assert set(test["reaction"]) == {"ornament"}  # what the acid left of the streak
    assert 0 < test["reaction"]["ornament"] < 1
    evidence = (
        await client.get(f"{API}/appraisals/{appraisal_id}/evidence", headers=headers)
    ).json()
    assert {e["kind"] for e in evidence} == {"rubbing_confirmed", "acid_applied", "result"}
    download = await client.get(evidence[0]["download_url"])
    assert download.status_code == 200
    assert download.content[:3] == b"\xff\xd8\xff"
    detail = (await client.get(f"{API}/appraisals/{appraisal_id}", headers=headers)).json()
    assert detail["status"] == "purity_completed"
    assert detail["items"][0]["karat"] == "22K"
    async with committed.transaction(org_id=live_bank.tenant.org_id) as session:
        topics = (
            (
                await session.execute(
                    select(OutboxEvent.topic).where(OutboxEvent.aggregate_id == appraisal_id)
                )
            )
            .scalars()
            .all()
        )
    assert topics.count("appraisal.purity_progress") == 1  # on the switch to ACID only
    assert topics.count("appraisal.completed") == 1
    # A finished test cannot be streamed again.
    async with connect(ws_url(server, test_id, live_bank)) as ws:
        refusal = json.loads(await ws.recv())
        assert refusal["code"] == "purity_test_closed"


async def test_bad_frames_get_an_error_message_and_the_test_goes_on(
    server: LiveServer, live_bank: Bank
) -> None:
    _, _, test_id = await new_test(live_bank)
    huge_header = bytearray(cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes())
    sof = huge_header.index(b"\xff\xc0")
    huge_header[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        for payload, code in (
            (b"this is not an image", "invalid_frame"),
            (bytes(huge_header), "frame_too_large"),
            (b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024), "frame_too_large"),
        ):
            await ws.send(payload)
            message = json.loads(await ws.recv())
            assert message["type"] == "error"
            assert message["code"] == code
        await ws.send("hello")
        assert json.loads(await ws.recv())["code"] == "invalid_input"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        status = await stream(ws, 0, 3)
        assert status["stage"] == "rubbing"


async def test_frames_faster_than_the_pipeline_are_dropped_not_queued(
    server: LiveServer, live_bank: Bank
) -> None:
    _, _, test_id = await new_test(live_bank)
    sent = 60
    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        for index in range(sent):  # all at once, no waiting for statuses
            frame, _ = CLIP_22K.frame(index)
            await ws.send(timestamped(frame, CLIP_22K.timestamp(index)))
        statuses: list[dict[str, Any]] = []
        while not statuses or statuses[-1]["frames_dropped"] + len(statuses) < sent:
            # until every frame is accounted for, processed or dropped, however slow
            statuses.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    assert 0 < len(statuses) < sent
    assert statuses[-1]["frames_dropped"] == sent - len(statuses)
    # The newest frame is always processed: nothing was left waiting behind the others.
    assert statuses[-1]["frame_index"] == len(statuses) - 1


async def test_refused_without_credentials_or_for_another_bank(
    server: LiveServer, live_bank: Bank, committed: Database, settings: Settings
) -> None:
    _, _, test_id = await new_test(live_bank)
    base = f"{server.ws_url}{API}/purity-sessions/{test_id}/ws"
    for url in (base, f"{base}?access_token=garbage"):
        with pytest.raises(InvalidStatus, match="403"):
            async with connect(url):
                pass
    other = await make_bank(
        live_bank.client, await committed_tenant(committed, settings, live_bank.client)
    )
    async with connect(ws_url(server, test_id, other)) as ws:
        assert json.loads(await ws.recv())["code"] == "purity_test_not_found"


async def test_disconnect_mid_test_interrupts_and_resume_finishes(
    server: LiveServer, live_bank: Bank
) -> None:
    appraisal_id, _, test_id = await new_test(live_bank)
    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        status = await stream(ws, 0, 75)  # into ACID: the rubbing stops by ~4 s
        assert status["stage"] == "acid"
    client, headers = live_bank.client, live_bank.appraiser.headers
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        test = (await client.get(f"{API}/purity-sessions/{test_id}", headers=headers)).json()
        if test["status"] == "interrupted":
            break
        await asyncio.sleep(0.05)
    assert test["status"] == "interrupted"
    assert test["resumable"] is True
    assert test["stage"] == "acid"
    assert test["karat"] is None
    detail = (await client.get(f"{API}/appraisals/{appraisal_id}", headers=headers)).json()
    assert detail["status"] == "purity_in_progress"

    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        status = await stream(ws, 75, len(CLIP_22K))
        assert status["saved"] is True
        assert status["karat"] == "22K"
    chain = (
        await client.get(f"{API}/appraisals/{appraisal_id}/audit-chain", headers=headers)
    ).json()
    actions = [event["action"] for event in chain]
    assert actions.count("appraisal.purity_test_interrupted") == 1
    assert "appraisal.purity_test_resumed" in actions
    verified = await client.get(
        f"{API}/appraisals/{appraisal_id}/audit-chain/verify", headers=headers
    )
    assert verified.json()["valid"] is True


class ClipTrack(VideoStreamTrack):
    """The synthetic clip as a camera, played at `speed` x its rate with its own timestamps
    (so the server may drop frames it cannot keep up with, and the test still reads)."""

    def __init__(self, clip: TouchstoneClip, speed: float = 1.0) -> None:
        super().__init__()
        self.clip = clip
        self.speed = speed
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        index = min(self.index, len(self.clip) - 1)
        self.index += 1
        await asyncio.sleep(1 / self.clip.spec.fps / self.speed)
        frame = av.VideoFrame.from_ndarray(self.clip.frame(index)[0], format="bgr24")
        frame.pts = index
        frame.time_base = fractions.Fraction(1, int(self.clip.spec.fps))
        return frame


async def test_webrtc_offer_answer_and_a_test_over_the_data_channel(
    server: LiveServer, live_bank: Bank
) -> None:
    _appraisal_id, _, test_id = await new_test(live_bank)
    pc = RTCPeerConnection()
    statuses: list[dict[str, Any]] = []
    done = asyncio.Event()
    channel = pc.createDataChannel("purity")

    @channel.on("message")
    def on_message(message: str) -> None:
        statuses.append(json.loads(message))
        if statuses[-1].get("saved"):
            done.set()

    pc.addTrack(ClipTrack(CLIP_22K, speed=3.0))
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=server.url, headers=live_bank.appraiser.headers) as http:
        response = await http.post(
            f"{API}/purity-sessions/{test_id}/webrtc/offer",
            json={"sdp": pc.localDescription.sdp, "type": "offer"},
        )
        assert response.status_code == 200, response.text
        answer = RTCSessionDescription(sdp=response.json()["sdp"], type="answer")
        await pc.setRemoteDescription(answer)
        try:
            await asyncio.wait_for(done.wait(), 30)
        finally:
            await pc.close()
        assert statuses[-1]["karat"] == "22K"
        assert statuses[-1]["appraisal_status"] == "purity_completed"
        assert any(s["stage"] == "acid" for s in statuses)
        test = (await http.get(f"{API}/purity-sessions/{test_id}")).json()
        assert test["status"] == "completed"
        assert test["transport"] == "webrtc"


@pytest.mark.parametrize(
    ("sdp", "code"),
    [
        ("not sdp at all", "unsupported_sdp"),
        (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
            "a=rtpmap:111 opus/48000/2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            "unsupported_sdp",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 98\r\n"
            "a=rtpmap:98 AV1/90000\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            "unsupported_codec",
        ),
    ],
)
async def test_unusable_offers_are_refused(
    bank: Bank, client: httpx.AsyncClient, sdp: str, code: str
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    created = await client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    response = await client.post(
        f"{API}/purity-sessions/{created.json()['id']}/webrtc/offer",
        json={"sdp": sdp, "type": "offer"},
        headers=bank.appraiser.headers,
    )
    assert_problem(response, 422, code)
    test = await client.get(
        f"{API}/purity-sessions/{created.json()['id']}", headers=bank.appraiser.headers
    )
    assert test.json()["status"] == "created"


async def test_each_org_chooses_its_detector_engine(
    settings: Settings,
    committed: Database,
    live_bank: Bank,
    tmp_path: Path,
) -> None:
    """`onnx-yolo` needs the configured models; with them, the org's tests run on them."""
    client, admin = live_bank.client, live_bank.admin
    refused = await client.patch(
        f"{API}/appraisal-settings", json={"detector_engine": "onnx-yolo"}, headers=admin
    )
    assert_problem(refused, 422, "invalid_detector_model")

    rubbing = tmp_path / "rubbing.onnx"
    rubbing.write_bytes(
        constant_output_model(
            yolo_output([(320, 240, 400, 200, 0, 0.9)], 2), names={0: "stone", 1: "gold"}
        )
    )
    acid = tmp_path / "acid.onnx"
    acid.write_bytes(
        constant_output_model(yolo_output([], 4), names={0: "acid", 1: "18k", 2: "22k", 3: "24k"})
    )
    with_models = settings.model_copy(
        update={"yolo_rubbing_model": rubbing, "yolo_acid_model": acid}
    )
    async with (
        serve(with_models, committed) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        chosen = await http.patch(
            f"{API}/appraisal-settings", json={"detector_engine": "onnx-yolo"}, headers=admin
        )
        assert chosen.status_code == 200, chosen.text
        live_bank.client = http
        _, _, test_id = await new_test(live_bank)
        test = (await http.get(f"{API}/purity-sessions/{test_id}", headers=admin)).json()
        assert test["engine"] == "onnx-yolo"
        async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
            status = await stream(ws, 0, 2)
        assert status["stage"] == "rubbing"
        assert [d["label"] for d in status["detections"]] == ["stone"]
        assert status["hint_code"] == "rub_ornament"


# --- the tester's authorization lasts only as long as the credential (issue 13, section 4) --


@pytest.fixture
async def quick_server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    """Streams re-check their credential every 0.2 s."""
    quick = settings.model_copy(update={"stream_recheck_seconds": 0.2})
    async with serve(quick, committed) as running:
        yield running


async def _end_testers_authorization(bank: Bank, how: str) -> None:
    if how == "logout":
        response = await bank.client.post(f"{API}/auth/logout", headers=bank.appraiser.headers)
        assert response.status_code == 204, response.text
        return
    change = {"is_active": False} if how == "deactivate" else {"branch_id": bank.other_branch}
    response = await bank.client.patch(
        f"{API}/users/{bank.appraiser.id}", headers=bank.admin, json=change
    )
    assert response.status_code == 200, response.text


async def _interrupted(bank: Bank, test_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        test: dict[str, Any] = (
            await bank.client.get(f"{API}/purity-sessions/{test_id}", headers=bank.admin)
        ).json()
        if test["status"] == "interrupted":
            break
        await asyncio.sleep(0.05)
    return test


@pytest.mark.parametrize(
    ("how", "code", "reason"),
    [
        ("logout", 4401, "unauthorized"),
        ("deactivate", 4401, "unauthorized"),
        ("move", 1008, "forbidden"),  # the tester now belongs to another branch
    ],
)
async def test_the_purity_socket_closes_when_the_testers_authorization_ends(
    quick_server: LiveServer, live_bank: Bank, how: str, code: int, reason: str
) -> None:
    _, _, test_id = await new_test(live_bank)
    async with connect(ws_url(quick_server, test_id, live_bank), max_size=None) as ws:
        assert (await stream(ws, 0, 3))["stage"] == "rubbing"
        await _end_testers_authorization(live_bank, how)
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))  # still open: the defect
        assert message["type"] == "error"
        assert message["code"] == reason
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)
    test = await _interrupted(live_bank, test_id)
    assert test["status"] == "interrupted"
    assert test["resumable"] is True


async def test_a_webrtc_session_ends_when_the_testers_session_ends(
    quick_server: LiveServer, live_bank: Bank
) -> None:
    _, _, test_id = await new_test(live_bank)
    pc = RTCPeerConnection()
    messages: list[dict[str, Any]] = []
    testing, refused = asyncio.Event(), asyncio.Event()
    channel = pc.createDataChannel("purity")

    @channel.on("message")
    def on_message(message: str) -> None:
        messages.append(json.loads(message))
        (refused if messages[-1]["type"] == "error" else testing).set()

    pc.addTrack(ClipTrack(CLIP_22K, speed=0.25))  # slow: the test cannot finish first
    await pc.setLocalDescription(await pc.createOffer())
    headers = live_bank.appraiser.headers
    async with httpx.AsyncClient(base_url=quick_server.url, headers=headers) as http:
        response = await http.post(
            f"{API}/purity-sessions/{test_id}/webrtc/offer",
            json={"sdp": pc.localDescription.sdp, "type": "offer"},
        )
        assert response.status_code == 200, response.text
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=response.json()["sdp"], type="answer")
        )
        try:
            await asyncio.wait_for(testing.wait(), 30)
            await _end_testers_authorization(live_bank, "logout")
            await asyncio.wait_for(refused.wait(), 30)  # still streaming: the defect
        finally:
            await pc.close()
    assert messages[-1]["code"] == "unauthorized"
    assert not any(m.get("saved") for m in messages)
    assert (await _interrupted(live_bank, test_id))["status"] == "interrupted"


async def test_purity_progress_reaches_only_the_tests_branch(
    server: LiveServer, live_bank: Bank, committed: Database
) -> None:
    """The stage-change event said no branch, so every branch's members received it."""

    def signed_in(staff: Staff) -> Tenant:
        return replace(live_bank.tenant, token=staff.headers["Authorization"].split()[1])

    topic = "appraisal.purity_progress"
    _, _, test_id = await new_test(live_bank)
    mine = asyncio.create_task(collect(server, signed_in(live_bank.manager), 1, topics=topic))
    theirs = asyncio.create_task(
        collect(server, signed_in(live_bank.other_appraiser), 1, topics=topic)
    )
    await subscribed(server, 2)
    async with connect(ws_url(server, test_id, live_bank), max_size=None) as ws:
        assert (await stream(ws, 0, 75))["stage"] == "acid"  # a stage change: an event
    await emit(committed, live_bank.tenant, topic, branch_id=live_bank.other_branch)
    received = (await asyncio.wait_for(mine, 30))[0]["data"]
    assert (received["branch_id"], received["purity_test_id"]) == (live_bank.branch, test_id)
    other_branch = await asyncio.wait_for(theirs, 30)
    assert other_branch[0]["data"] == {"branch_id": live_bank.other_branch}
