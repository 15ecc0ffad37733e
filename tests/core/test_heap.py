"""The server's garbage-collector settings (`main._settle_heap`)."""

from __future__ import annotations

import gc

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import YOUNG_COLLECTION_THRESHOLD, create_app


async def test_start_up_freezes_its_heap_and_raises_the_young_threshold(
    settings: Settings, database: Database
) -> None:
    """Full collections never walk what start-up built; young ones wait for 10,000 allocations."""
    before = gc.get_threshold()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = create_app(settings, database=database)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
    finally:
        gc.set_threshold(*before)
