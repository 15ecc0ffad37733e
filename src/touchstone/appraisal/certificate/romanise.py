"""Text the certificate's embedded font can draw: Indic letters romanised by name.

The PDF embeds a subset of DejaVu Sans (Latin, the rupee sign). Characters that font lacks
are not dropped: Indic scripts (Devanagari, Tamil and the other Brahmic scripts) are
romanised from their Unicode character names, anything else becomes "?", and the
certificate then says that the verification page shows the names as entered.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

UNREADABLE: Final = "?"
_INDIC_SCRIPTS: Final = frozenset(
    {
        "DEVANAGARI",
        "BENGALI",
        "GURMUKHI",
        "GUJARATI",
        "ORIYA",
        "TAMIL",
        "TELUGU",
        "KANNADA",
        "MALAYALAM",
    }
)
_REPEATED_LETTER: Final = re.compile(r"(.)\1+")
"""Doubled letters in names mark retroflex consonants (NNA, LLLA); one reads better."""
_INDIC_SIGNS: Final = {
    "ANUSVARA": "n",
    "CANDRABINDU": "n",
    "TIPPI": "n",
    "VISARGA": "h",
    "ADDAK": "",
    "AVAGRAHA": "",
}


class Romaniser:
    """Makes text printable with the embedded font, romanising Indic letters by name.

    Indic consonant names carry the inherent vowel (KA); a following vowel sign replaces
    it and a virama removes it, which gives readable names ("murukan" for முருகன்).
    Only the PDF uses this; the digest and the HTML page keep the text as entered.
    """

    def __init__(self, supported: frozenset[int]) -> None:
        self._supported = supported
        self.replaced_any = False

    def __call__(self, text: str) -> str:
        out: list[str] = []
        inherent_vowel = False
        for char in unicodedata.normalize("NFC", text):
            if ord(char) in self._supported:
                out.append(char)
                inherent_vowel = False
                continue
            if unicodedata.category(char)[0] in "CZ":
                out.append(" ")
                inherent_vowel = False
                continue
            self.replaced_any = True
            script, _, rest = unicodedata.name(char, "").partition(" ")
            digit = unicodedata.decimal(char, None)
            if digit is not None:
                out.append(str(digit))
                inherent_vowel = False
            elif rest == "SIGN NUKTA":
                continue
            elif script not in _INDIC_SCRIPTS:
                out.append(UNREADABLE)
                inherent_vowel = False
            elif rest.startswith("LETTER "):
                letter = rest.removeprefix("LETTER ").replace(" ", "").lower()
                inherent_vowel = letter[0] not in "aeiou" and letter.endswith("a")
                if inherent_vowel:
                    letter = _REPEATED_LETTER.sub(r"\1", letter)
                previous = next((piece for piece in reversed(out) if piece), "")
                if not previous[-1:].isalpha():
                    letter = letter.capitalize()
                out.append(letter)
            elif rest.startswith("VOWEL SIGN "):
                if inherent_vowel:
                    out[-1] = out[-1][:-1]
                out.append(rest.removeprefix("VOWEL SIGN ").replace(" ", "").lower())
                inherent_vowel = False
            elif rest in ("SIGN VIRAMA", "SIGN HALANT"):
                if inherent_vowel:
                    out[-1] = out[-1][:-1]
                inherent_vowel = False
            else:
                out.append(_INDIC_SIGNS.get(rest.removeprefix("SIGN "), UNREADABLE))
                inherent_vowel = False
        return "".join(out)
