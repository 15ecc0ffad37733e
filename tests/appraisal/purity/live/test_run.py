"""The one-slot mailbox between a transport and the pipeline."""

from __future__ import annotations

import asyncio

import numpy as np

from touchstone.appraisal.purity.live.run import DecodeFrame, LatestFrame


def _frame(number: int) -> DecodeFrame:
    return lambda: (np.zeros((16, 16, 3), np.uint8), float(number))


async def test_a_new_frame_replaces_the_waiting_one() -> None:
    mailbox = LatestFrame()
    frames = [_frame(n) for n in range(5)]
    for frame in frames:
        mailbox.put(frame)
    assert await mailbox.take() is frames[-1]
    assert (mailbox.received, mailbox.dropped) == (5, 4)
    mailbox.put(frames[0])
    assert await mailbox.take() is frames[0]
    assert mailbox.dropped == 4


async def test_closing_wakes_the_taker_and_refuses_more() -> None:
    mailbox = LatestFrame()
    taker = asyncio.create_task(mailbox.take())
    await asyncio.sleep(0)
    mailbox.close()
    assert await taker is None
    mailbox.put(_frame(1))
    assert mailbox.received == 0
    assert await mailbox.take() is None
