"""Reading a description as words, accent- and case-blind, to find `vocabulary` phrases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """ "Rücklastschrift I/W" -> ("rucklastschrift", "i", "w")."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return tuple(_WORD.findall(plain))


class Phrases:
    """A set of phrases, each found only as whole consecutive words."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in phrases:
            split = words(phrase)
            if split:
                self._by_first.setdefault(split[0], []).append(split)

    def found_in(self, text: tuple[str, ...]) -> bool:
        for at, word in enumerate(text):
            for phrase in self._by_first.get(word, ()):
                if text[at : at + len(phrase)] == phrase:
                    return True
        return False
