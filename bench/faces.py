"""The outside faces corpus (`../shared/corpora/faces/`): identities, groups, the split.

The photos are other people's (see the corpus's MANIFEST.md) and are read where they lie,
never copied into the repository. An identity is held out when the first byte of the
SHA-256 of its folder name is even; within each part, an identity is a stranger (never
enrolled, so it must come out "unknown") when the second byte is a multiple of three.
Nothing is chosen by looking at the held-out results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "corpora" / "faces"
DEVELOPMENT = "development"
HELD_OUT = "held-out"


@dataclass(frozen=True)
class Identity:
    name: str
    photos: tuple[Path, ...]

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.name.encode()).digest()

    @property
    def part(self) -> str:
        return HELD_OUT if self.digest[0] % 2 == 0 else DEVELOPMENT

    @property
    def stranger(self) -> bool:
        return self.digest[1] % 3 == 0


def available() -> bool:
    return (FACES / "labels.json").is_file()


@cache
def labels() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FACES / "labels.json").read_text())
    return loaded


def identities() -> list[Identity]:
    listed: dict[str, list[str]] = labels()["identities"]
    return [
        Identity(name, tuple(FACES / photo for photo in photos))
        for name, photos in sorted(listed.items())
    ]


def groups() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = labels()["groups"]
    return found
