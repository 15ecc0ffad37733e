"""How a rule and the counterparty finder read a description: words and shapes.

A description's *shape* has every digit zeroed. Rows of a statement repeat the same wording
with other references, so what depends only on the shape is worked out once per shape.
"""

from __future__ import annotations

import re

# Letters and digits are separate words, so a keyword "POS" also finds "POS1234".
WORD = re.compile(r"[^\W\d_]+|\d+")
DIGIT = re.compile(r"\d")
ZERO_DIGITS = str.maketrans("123456789", "000000000")  # `description.translate`: its shape


def words_of(text: str) -> tuple[str, ...]:
    return tuple(WORD.findall(text.casefold()))
