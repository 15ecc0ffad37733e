"""The WebRTC transport of the live purity test (aiortc on the server side).

The client offers a video track and a data channel; the answer comes back in the HTTP
response (ICE candidates gathered, no trickle). Statuses go out on the data channel.

aiortc queues every decoded frame and never drops any, so a slow consumer would fall
further and further behind the camera. Here a reader takes each frame off the track as
soon as it arrives and leaves it in the run's one-slot mailbox: the pipeline always gets
the freshest frame and stale ones are skipped (counted as dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from typing import Any

import av
import structlog
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from touchstone.appraisal.exceptions import UnsupportedCodec, UnsupportedSdp
from touchstone.appraisal.purity.live.run import PurityRun, drive
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.errors import AppError
from touchstone.core.live_socket import dumps, error_message
from touchstone.core.storage import Storage
from touchstone.core.stream_auth import StreamAuthorization

log = structlog.get_logger("touchstone.appraisal.webrtc")

SUPPORTED_VIDEO_CODECS = frozenset({"VP8", "H264"})
CONNECT_TIMEOUT_S = 30.0
"""A peer that never sends video within this time leaves the test interrupted."""
SETTLE_S = 0.5
"""Frames of a stream's first half second are skipped: a WebRTC sender starts at a low
bitrate, and the colour bleeding at the stone's edge in those first frames can pass for
gold on the stone, a mark the test would keep (seen with Chromium's VP8 on loopback)."""
LINGER_S = 5.0
"""After the result, how long the client gets to read it and hang up before we do."""
_RTPMAP = re.compile(r"^a=rtpmap:\d+ ([A-Za-z0-9-]+)/", re.MULTILINE)

_peers: set[RTCPeerConnection] = set()
"""Open connections, so none is garbage-collected mid-test."""


def check_offer(sdp: str) -> None:
    """Refuse, before any connection is made, offers this server cannot serve."""
    if not sdp.startswith("v=0"):
        raise UnsupportedSdp("The offer is not an SDP session description")
    sections = re.split(r"^(?=m=)", sdp.replace("\r\n", "\n"), flags=re.MULTILINE)
    video = [s for s in sections if s.startswith("m=video")]
    if not video:
        raise UnsupportedSdp("The offer has no video track")
    if not any(s.startswith("m=application") for s in sections):
        raise UnsupportedSdp("The offer needs a data channel, which carries the test's status")
    codecs = {name.upper() for section in video for name in _RTPMAP.findall(section)}
    if not codecs & SUPPORTED_VIDEO_CODECS:
        raise UnsupportedCodec(
            f"The offer's video codecs ({', '.join(sorted(codecs)) or 'none'}) include none of "
            f"{', '.join(sorted(SUPPORTED_VIDEO_CODECS))}"
        )


def ice_servers(settings: Settings) -> list[RTCIceServer]:
    return [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in settings.webrtc_ice_servers
    ]


class _Channel:
    """Where statuses go: the client's data channel, once it is open."""

    def __init__(self) -> None:
        self.channel: RTCDataChannel | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(dumps(message))


def _decoder(frame: av.VideoFrame, received_at: float) -> Any:
    timestamp = float(frame.time) if frame.time is not None else received_at
    return lambda: (frame.to_ndarray(format="bgr24"), timestamp)


async def answer(
    database: Database,
    storage: Storage,
    settings: Settings,
    authorization: StreamAuthorization,
    test_id: uuid.UUID,
    sdp: str,
) -> RTCSessionDescription:
    """Accept the offer and start the test; the test runs until it completes, the peer goes
    away or the tester's authorization ends (then it is interrupted and can be resumed: an
    `error` message on the data channel says why before the connection closes)."""
    check_offer(sdp)
    channel = _Channel()
    run = await PurityRun.open(
        database, storage, settings, authorization.principal, test_id, "webrtc", channel.send
    )
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(settings)))
    _peers.add(pc)
    video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    hung_up = asyncio.Event()

    @pc.on("datachannel")
    def on_datachannel(data_channel: RTCDataChannel) -> None:
        channel.channel = data_channel

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not video.done():
            video.set_result(track)

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            hung_up.set()
            if not video.done():
                video.set_exception(ConnectionError("the peer hung up before sending video"))
            await pc.close()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, RuntimeError) as error:
        await _stop(pc, run)
        raise UnsupportedSdp(f"The offer cannot be negotiated: {error}") from None
    except BaseException:
        await _stop(pc, run)
        raise
    task = asyncio.create_task(_supervise(pc, run, video, hung_up, authorization))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return pc.localDescription


_tasks: set[asyncio.Task[None]] = set()


async def _stop(pc: RTCPeerConnection, run: PurityRun) -> None:
    run.frames.close()
    await run.close()
    await pc.close()
    _peers.discard(pc)


async def _supervise(
    pc: RTCPeerConnection,
    run: PurityRun,
    video: asyncio.Future[MediaStreamTrack],
    hung_up: asyncio.Event,
    authorization: StreamAuthorization,
) -> None:
    ended: AppError | None = None
    try:
        try:
            track = await asyncio.wait_for(video, CONNECT_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            log.info("webrtc_no_video", test_id=str(run.test_id))
            run.frames.close()
            await run.close()
            return

        async def receive() -> None:
            first: float | None = None
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.VideoFrame):
                    continue
                received_at = time.monotonic()
                moment = float(frame.time) if frame.time is not None else received_at
                first = moment if first is None else first
                if moment - first >= SETTLE_S:
                    run.frames.put(_decoder(frame, received_at))

        async def receive_while_authorized() -> None:
            nonlocal ended
            ended = await authorization.guard(receive())

        await drive(run, receive_while_authorized)
        if run.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hung_up.wait(), LINGER_S)
        elif ended is not None:
            log.info("webrtc_authorization_ended", test_id=str(run.test_id), code=ended.code)
            await run.send(error_message(ended))
    except Exception:
        log.exception("webrtc_run_failed", test_id=str(run.test_id))
    finally:
        await pc.close()
        _peers.discard(pc)
