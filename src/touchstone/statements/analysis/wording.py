"""Reading a description as words, accent- and case-blind, to find `vocabulary` phrases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """ "Rücklastschrift I/W" -> ("rucklastschrift", "i", "w"); letters outside ASCII that
    lose nothing but an accent keep their base letter, others drop out (the vocabulary is
    Latin script)."""
    plain = text.casefold()
    if not plain.isascii():
        plain = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
    return tuple(_WORD.findall(plain))


class Phrases:
    """Named lists of phrases, each found only as whole consecutive words, all in one pass
    over a description."""

    def __init__(self, lists: Mapping[str, Iterable[str]]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for name, phrases in lists.items():
            for phrase in phrases:
                split = words(phrase)
                if split:
                    self._by_first.setdefault(split[0], []).append((split, name))

    def found_in(self, text: tuple[str, ...]) -> set[str]:
        """The names of the lists with a phrase in `text`."""
        found: set[str] = set()
        for at, word in enumerate(text):
            for phrase, name in self._by_first.get(word, ()):
                if name not in found and text[at : at + len(phrase)] == phrase:
                    found.add(name)
        return found
