"""A real uvicorn server in the test's event loop: lifespan runs the relay and listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app


@dataclass
class LiveServer:
    app: FastAPI
    url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(settings: Settings, database: Database) -> AsyncIterator[LiveServer]:
    app = create_app(settings, database=database)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws="websockets-sansio"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server failed to start"
        await asyncio.sleep(0.02)
    try:
        yield LiveServer(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live_server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as server:
        yield server
