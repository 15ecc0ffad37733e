"""The overlay video, with PyAV (FFmpeg inside the wheel): probe, transcode, poster.

Phones play H.264 (High profile, yuv420p) with AAC audio in an MP4 whose index comes first
(`faststart`), so playback starts before the whole file arrives. Two renditions: `main`
(long side at most 1280 px) and `small` (at most 480 px) for slow networks, each with a
bitrate cap, and a JPEG poster shown before playback starts.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from touchstone.arcontent.exceptions import BadMedia

MAX_SECONDS = 120.0
MAX_SOURCE_PIXELS = 3840 * 2160
MAX_FPS = 30
AUDIO_RATE = 48_000


@dataclass(frozen=True)
class Rendition:
    name: str
    long_side: int
    video_kbps: int
    audio_kbps: int


RENDITIONS = (Rendition("main", 1280, 2500, 128), Rendition("small", 480, 600, 64))


@dataclass(frozen=True)
class Probe:
    seconds: float
    width: int
    height: int
    codec: str
    has_audio: bool


def probe(path: Path) -> Probe:
    """The video's duration, size and codec; refuse what cannot be an overlay."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadMedia("The file has no video track")
            video = container.streams.video[0]
            seconds = _seconds(container, video)
            width, height = video.codec_context.width, video.codec_context.height
            codec = video.codec_context.name
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise BadMedia(f"The video cannot be read: {exc}") from exc
    if seconds <= 0:
        raise BadMedia("The video has no duration")
    if seconds > MAX_SECONDS:
        raise BadMedia(f"The video lasts {seconds:.1f} s; an overlay may last {MAX_SECONDS:.0f} s")
    if width * height == 0 or width * height > MAX_SOURCE_PIXELS:
        raise BadMedia(f"The video is {width}x{height}; at most 3840x2160 is accepted")
    return Probe(round(seconds, 3), width, height, codec, has_audio)


def _seconds(container: Any, video: VideoStream) -> float:
    if container.duration:
        return float(container.duration) / av.time_base
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return 0.0


def fitted(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size within `long_side`, never enlarged, both sides even (yuv420p needs it)."""
    scale = min(1.0, long_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def transcode(
    source: Path,
    target: Path,
    rendition: Rendition,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Write `rendition` of `source` to `target`; the facts of the written file."""
    with (
        av.open(str(source)) as src,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        video_in = src.streams.video[0]
        audio_in: AudioStream | None = src.streams.audio[0] if src.streams.audio else None
        width, height = fitted(
            video_in.codec_context.width, video_in.codec_context.height, rendition.long_side
        )
        rate = video_in.average_rate or Fraction(25)
        rate = min(rate, Fraction(MAX_FPS))
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.bit_rate = rendition.video_kbps * 1000
        video_out.options = {
            "preset": "veryfast",
            "profile": "high",
            "crf": "23",
            "maxrate": f"{rendition.video_kbps}k",
            "bufsize": f"{2 * rendition.video_kbps}k",
        }
        audio_out = None
        if audio_in is not None:
            audio_out = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            audio_out.bit_rate = rendition.audio_kbps * 1000
        seconds = _seconds(src, video_in) or 1.0
        frames, last_pts = 0, -1
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        for packet in src.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    moment = float(frame.pts * frame.time_base)
                    pts = round(moment * rate)
                    if pts <= last_pts:  # a faster source is thinned to MAX_FPS
                        continue
                    last_pts = pts
                    scaled = frame.reformat(width=width, height=height, format="yuv420p")
                    scaled.pts, scaled.time_base = pts, 1 / rate
                    out.mux(video_out.encode(scaled))
                    frames += 1
                    if progress is not None and frames % 25 == 0:
                        progress(min(1.0, moment / seconds))
                elif isinstance(frame, av.AudioFrame) and audio_out is not None:
                    frame.pts = None  # the encoder numbers the resampled samples itself
                    out.mux(audio_out.encode(frame))
        out.mux(video_out.encode(None))
        if audio_out is not None:
            out.mux(audio_out.encode(None))
    if frames == 0:
        raise BadMedia("The video has no frame that can be decoded")
    size = target.stat().st_size
    return {
        "width": width,
        "height": height,
        "frames": frames,
        "codec": "h264",
        "audio": "aac" if audio_out is not None else None,
        "bytes": size,
        "kbps": round(size * 8 / 1000 / seconds),
        "seconds": round(seconds, 3),
    }


def poster(source: Path, long_side: int = 1280) -> tuple[bytes, dict[str, Any]]:
    """A JPEG of the frame at a tenth of the video (its first frame is often black)."""
    with av.open(str(source)) as src:
        video = src.streams.video[0]
        wanted = _seconds(src, video) / 10
        chosen = None
        for frame in src.decode(video):
            chosen = frame
            if frame.time is not None and frame.time >= wanted:
                break
        if chosen is None:
            raise BadMedia("The video has no frame that can be decoded")
        width, height = fitted(chosen.width, chosen.height, long_side)
        image = chosen.to_image(width=width, height=height)  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), {"width": width, "height": height}
