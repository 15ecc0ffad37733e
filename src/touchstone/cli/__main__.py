"""`python -m touchstone.cli`: how the server starts its own worker process."""

import sys

from touchstone.cli import app

sys.exit(app())
