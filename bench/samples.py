"""Sample inputs for trying Touchstone by hand, as the README does.

    python -m bench.samples statement march.pdf            # a generated statement PDF
    python -m bench.samples purity WS_URL --token TOKEN    # a clip streamed to a purity test

Both are generated, like every input under `bench/`: for trying the API and for scale, never
for a claim about accuracy, which is measured on the outside data in `../shared/corpora`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench.generators.statements import LAYOUTS, generate_statement
from bench.generators.touchstone_clips import ClipSpec, TouchstoneClip
from touchstone.appraisal.purity.frames import encode_jpeg
from touchstone.appraisal.purity.pipeline import Karat

FPS = 15


async def stream_clip(
    url: str, frames: list[bytes], on_message: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any] | None:
    """Send the clip in real time while reading statuses: the completing status, or None if
    the test did not complete within the clip and 10 s more."""
    async with connect(url, max_size=2**22) as socket:

        async def send() -> None:
            for jpeg in frames:
                await socket.send(jpeg)
                await asyncio.sleep(1 / FPS)

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(len(frames) / FPS + 10):
                async for raw in socket:
                    message: dict[str, Any] = json.loads(raw)
                    if on_message is not None:
                        on_message(message)
                    if message.get("stage") == "completed":
                        return message
        except TimeoutError:
            return None
        finally:
            sender.cancel()
    return None


def clip_frames(karat: Karat, seed: int) -> list[bytes]:
    return [encode_jpeg(frame) for frame, _ in TouchstoneClip(ClipSpec(karat, seed=seed))]


def _print_stage_changes() -> Callable[[dict[str, Any]], None]:
    last: list[object] = [None]

    def show(message: dict[str, Any]) -> None:
        if message.get("stage") != last[0]:
            last[0] = message.get("stage")
            print(json.dumps({k: message.get(k) for k in ("stage", "hint", "karat")}))

    return show


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.samples", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    statement = commands.add_parser("statement", help="write a generated statement PDF")
    statement.add_argument("out", type=Path)
    statement.add_argument("--layout", choices=sorted(LAYOUTS), default="ruled_uk")
    statement.add_argument("--seed", type=int, default=1)
    purity = commands.add_parser("purity", help="stream a clip to a purity test's WebSocket")
    purity.add_argument("websocket_url", help="ws://host:port + the session's websocket_url")
    purity.add_argument("--token", required=True, help="an access token of the appraiser")
    purity.add_argument("--karat", choices=["18K", "22K", "24K"], default="22K")
    purity.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.command == "statement":
        args.out.write_bytes(generate_statement(args.layout, seed=args.seed).pdf)
        print(f"wrote {args.out}")
        return
    frames = clip_frames(Karat(args.karat), args.seed)
    url = f"{args.websocket_url}?access_token={args.token}"
    final = asyncio.run(stream_clip(url, frames, _print_stage_changes()))
    if final is None:
        raise SystemExit("the purity test did not complete")
    print(json.dumps(final))


if __name__ == "__main__":
    main()
