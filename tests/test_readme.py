"""The README's commands, run as written against a live server: the front door must open.

Every ```bash block of README.md runs, in order, in one bash with `set -euo pipefail`
(```sh blocks, which start servers or the test suite, are shown only). The server is a real
`touchstone serve` with its own data directory and port; the blocks find it through `API`,
which they default to the address `make run` serves on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.test_cli import free_port, serve_until_ready

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_readme_runs_as_written(worker_id: str) -> None:
    script = "\n".join(BLOCK.findall((ROOT / "README.md").read_text()))
    assert "touchstone demo" in script
    assert "/batches" in script
    data_dir = ROOT / "var" / f"test-readme-{worker_id}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "WEBHOOK_ALLOW_LOCAL": "true",  # as the README starts it for its webhook example
    }
    env.pop("DATABASE_URL", None)
    try:
        server, port = serve_until_ready(env)
        try:
            ran = subprocess.run(
                ["/bin/bash", "-c", "set -euo pipefail\n" + script],
                env={
                    **env,
                    "API": f"http://127.0.0.1:{port}/api/v1",
                    "HOOK_PORT": str(free_port()),
                },
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            server.terminate()
            server.communicate(timeout=60)
        assert ran.returncode == 0, f"{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}"
        assert '"stage": "completed"' in ran.stdout, "the purity test did not complete"
        assert "/verify/" in ran.stdout, "no certificate link"
        assert '"webhook.ping"' in ran.stdout, "the receiver printed no verified ping"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
