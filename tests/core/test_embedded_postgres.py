"""What `core.postgres` relies on in pgserver, so an upgrade that changes it fails here first."""

from __future__ import annotations

import json
import os

from touchstone.core.config import Settings
from touchstone.core.postgres import ATTACHED_PIDS_FILE, DatabaseUrls, start_embedded_server


def test_pgserver_lists_attached_processes_where_we_prune_them(
    database_urls: DatabaseUrls, settings: Settings
) -> None:
    if settings.database_url is not None:
        return  # an external server: nothing embedded to look at
    server = start_embedded_server(settings.data_dir)
    attached = json.loads((server.pgdata / ATTACHED_PIDS_FILE).read_text())
    assert os.getpid() in attached
