"""The payee or payer a description names: rail codes, references and dates stripped.

Two kinds of wording: structured ones (`UPI/DR/<ref>/<name>/<bank>/<vpa>`, `NEFT-<ref>-<name>`)
are split into segments and the first that reads as a name wins; free ones (`CARD PAYMENT TO
TESCO STORES 3217 ON 12-03-2024`) lose their lead-in and their tail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from touchstone.statements.categorise.text import DIGIT, ZERO_DIGITS

_NO_COUNTERPARTY = re.compile(
    r"^(?:ATM\b|ATW\b|NWD\b|NFS\b|CASH\b|BY CASH\b|CSH\b|INTEREST\b|"
    r"INT\.?\s?(?:PD|CR|PAID)\b|SB\s?INT\b|"
    r"CREDIT INTEREST|DEBIT INTEREST|(?:SERVICE\s)?CHARGES?\b|CHGS?\b|BALANCE\b|OPENING\b|"
    r"CLOSING\b|B/F\b|C/F\b)"
)
_TRANSFER_LEAD = re.compile(r"^(?:BY|TO)\s+(?:TRANSFER|CLG|CLEARING)\s*[-:]?\s*")
_RAILS = r"(?:UPI|NEFT|IMPS|RTGS|NACH|ACH|ECS|MMT|INB|INFT|IFT|NFT|BIL|BILLPAY|ONL|TPT|FT|MOB)"
_STRUCTURED = re.compile(rf"^{_RAILS}(?:\s+(?:{_RAILS}|DR|CR|D|C))*\s*[-/*:]")
_SEGMENT_SPLIT = re.compile(r"[/*|:]|\s*-\s*")
_FILLER_WORDS = (
    "UPI NEFT IMPS RTGS NACH ACH ECS MMT INB INFT IFT NFT IB NB BIL BILLPAY ONL TPT FT MOB MB "
    "POS TRANSFER TRF TFR BY TO FROM DR CR D C P2A P2M P2P PAY PAYMENT COLLECT TP REQ SENT "
    "SBIN HDFC ICIC UTIB KKBK YESB PUNB BARB CNRB IDIB UBIN BKID IOBA INDB FDRL"
)
_FILLER = frozenset(_FILLER_WORDS.split())
_IFSC = re.compile(r"^[A-Z]{4}0[A-Z0-9]{6}$")
_FREE_PREFIX = re.compile(
    r"^(?:(?:DEBIT CARD PURCHASE|CARD PAYMENT TO|CARD PAYMENT|CARD PURCHASE|POS PURCHASE|"
    r"PURCHASE|CONTACTLESS PAYMENT|CONTACTLESS|ONLINE PAYMENT TO|DIRECT DEBIT TO|DIRECT DEBIT|"
    r"STANDING ORDER TO|STANDING ORDER|BILL PAYMENT TO|BILL PAYMENT|BANK GIRO CREDIT|"
    r"FASTER PAYMENTS? RECEIVED FROM|FASTER PAYMENTS? TO|FASTER PAYMENTS?|TRANSFER TO|"
    r"TRANSFER FROM|TRF TO|TRF FROM|PAYMENT TO|PAYMENT FROM|RECEIVED FROM|BACS|POS|VIS|VISA|"
    r"VPS|DEB|OBP|DD|SO|STO|BP|BGC|FPI|FPO|TFR|CR|DR|ECOM|PCD|CHQ|P2A|P2M|\)\)\)|"
    rf"{_RAILS})(?=[\s\d.:-]|$)"
    r"[\s.:-]*(?:[\dX*]{4,}\s+)?)+"
)
_FREE_TAIL = re.compile(r"\s(?:(?:REF|REFERENCE|VIA)\b|ON\s+\d|AT\s+\d{1,2}[:.]\d{2}).*$")
# Dates such as "12 JAN 2024", then any word holding a digit: references, masked cards,
# dates, times, store numbers.
_NOISE = re.compile(
    r"\b\d{1,2}\s?(?:JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|"
    r"AUG(?:UST)?|SEP(?:T|TEMBER)?|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)(?![A-Z])"
    r"(?:\s?\d{2,4})?|[^\s\d]*+\d\S*"
)
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " -.,*#:/&"


_LETTER = re.compile(r"[^\W\d_]")


def _letters(text: str) -> int:
    return len(_LETTER.findall(text))


def _clean_name(text: str) -> str | None:
    text = _FREE_TAIL.sub("", text)
    text = _SPACES.sub(" ", _NOISE.sub(" ", text)).strip(_EDGE_PUNCTUATION)
    return text if _letters(text) >= 2 else None


def _name_from_segments(segments: Iterable[str]) -> str | None:
    vpa_name: str | None = None
    for raw in segments:
        words = raw.split()
        while words and words[0] in _FILLER:
            words.pop(0)
        segment = " ".join(words).strip(_EDGE_PUNCTUATION)
        if not segment or _IFSC.match(segment):
            continue
        if "@" in segment:
            vpa_name = vpa_name or _clean_name(segment.split("@")[0].replace(".", " "))
            continue
        if len(DIGIT.findall(segment)) >= 4 and _letters(segment) <= 8:
            continue  # a reference such as N123456789 or HDFCN52022012345678
        if name := _clean_name(segment):
            return name
    return vpa_name


def extract_counterparty(description: str) -> str | None:
    """The payee or payer named in a description, upper-case, or None when there is none.

    Drops rail prefixes and codes (UPI/, NEFT-, POS, DD, FPI...), card masks, references,
    dates and IFSC codes; cash, interest and bank charges have no counterparty.
    """
    return counterparty_of_shape(description.translate(ZERO_DIGITS))


def counterparty_of_shape(shape: str) -> str | None:
    """Digits only ever count, never matter by value, and a name never keeps one: so the
    answer for a description is the answer for its shape, which rows share."""
    text = " ".join(shape.upper().split())
    if not text or _NO_COUNTERPARTY.match(text):
        return None
    text = _TRANSFER_LEAD.sub("", text)
    if _STRUCTURED.match(text):
        return _name_from_segments(_SEGMENT_SPLIT.split(text))
    return _clean_name(_FREE_PREFIX.sub("", text))
