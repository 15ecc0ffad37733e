"""From a source's bytes to its text and passages, each with where it stands in the document.

The extracted text is one string per source (pages joined by a blank line); a passage is a
slice of it, `text[char_start:char_end]`, so a citation's offsets always point into text that
exists. Blocks (paragraphs, list items, headings) are found per kind: PDF pages' lines are
unwrapped into paragraphs (pdfium breaks every printed line), HTML keeps the elements that
carry content (script, navigation, headers, footers, forms and asides are dropped), Markdown
and plain text split on blank lines. Consecutive blocks under one heading fill a passage up
to `PASSAGE_CHARS`; a longer block is cut at sentence ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

PASSAGE_CHARS = 900
"""Target passage length: a few sentences, short enough for a citation to point somewhere."""
MAX_PASSAGE_CHARS = 1800
MAX_HEADING_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_ABBREVIATIONS = frozenset(
    "e.g i.e etc al fig figs no nos vs mr mrs ms dr st prof inc ltd co jr sr u.s ca approx".split()  # noqa: SIM905
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    heading: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    """One page (PDF) or the whole document, as blocks."""

    page: int | None
    blocks: list[Block]


@dataclass(frozen=True, slots=True)
class PassageDraft:
    ordinal: int
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    text: str


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    passages: list[PassageDraft]


def clean_line(line: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub("", line)).strip()


# --- blocks per kind --------------------------------------------------------------------------


def pdf_blocks(page_text: str) -> list[Block]:
    """Unwrap a PDF page's printed lines into paragraphs; a short line with no closing
    punctuation between two paragraphs, most of its words capitalised, is a heading."""
    lines = [clean_line(line) for line in page_text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    blocks: list[Block] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(Block(" ".join(current)))
            current.clear()

    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        previous_ended = not current or bool(_SENTENCE_END.search(current[-1]))
        if previous_ended and _looks_like_heading(line, following):
            flush()
            blocks.append(Block(line, heading=True))
            continue
        if current and current[-1].endswith("-") and line[:1].islower():
            current[-1] = current[-1][:-1] + line  # a word hyphenated at the line's end
            continue
        current.append(line)
        if _SENTENCE_END.search(line) and following[:1].isupper() and len(line) < 45:
            flush()  # a short last line of a paragraph
    flush()
    return blocks


def _looks_like_heading(line: str, following: str) -> bool:
    words = line.split()
    if not 1 <= len(words) <= 8 or len(line) > 80 or _SENTENCE_END.search(line):
        return False
    if not following[:1].isupper() or line.endswith((",", ";", "-")):
        return False
    capitalised = sum(1 for word in words if word[:1].isupper() or not word[:1].isalpha())
    return capitalised >= max(1, len(words) * 2 // 3) and any(c.isalpha() for c in line)


def text_blocks(text: str, *, markdown: bool) -> list[Block]:
    """Paragraphs between blank lines; in Markdown, `#` lines are headings and list items
    are blocks of their own."""
    blocks: list[Block] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(Block(" ".join(current)))
            current.clear()

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = clean_line(raw)
        if not line:
            flush()
            continue
        if markdown and (match := _MD_HEADING.match(line)):
            flush()
            blocks.append(Block(match.group(2), heading=True))
            continue
        if markdown and re.match(r"^([-*+]|\d+[.)])\s+", line):
            flush()
        current.append(line)
    flush()
    return blocks


_DROPPED = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "nav",
        "header",
        "footer",
        "aside",
        "form",
        "button",
        "select",
        "iframe",
        "object",
        "head",
        "sup",
    }
)
_BLOCK_TAGS = frozenset(
    {"p", "li", "div", "section", "article", "main", "blockquote", "pre", "td", "th", "dd", "dt"}
    | {"tr", "table", "ul", "ol", "dl", "figcaption", "caption", "br", "body"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CONTAINERS = frozenset({"html", "body", "main", "article"})
"""Never dropped for their class names (a page's root names every feature of the skin)."""
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "source", "col", "area"})
_BOILERPLATE_CLASS = re.compile(
    r"(^|[\s_-])(nav|navbox|menu|sidebar|footer|header|cookie|banner|breadcrumb|toc|"
    r"mw-editsection|reflist|references|noprint|metadata|catlinks|infobox)([\s_-]|$)",
    re.IGNORECASE,
)


class _HtmlText(HTMLParser):
    """Text of the elements that carry content, as blocks; boilerplate subtrees dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.skipping: list[str] = []  # the open tags of a dropped subtree
        self.heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag == "br" and not self.skipping:
                self.parts.append(" ")
            return
        if self.skipping:
            self.skipping.append(tag)
            return
        named = " ".join(value or "" for key, value in attrs if key in ("class", "id", "role"))
        hidden = any(
            key == "hidden" or (key == "aria-hidden" and value == "true") for key, value in attrs
        )
        by_name = tag not in _CONTAINERS and bool(named) and bool(_BOILERPLATE_CLASS.search(named))
        if tag in _DROPPED or hidden or by_name:
            self.skipping.append(tag)
            return
        if tag in _HEADINGS:
            self.flush()
            self.heading = True
        elif tag in _BLOCK_TAGS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if self.skipping:
            if tag in self.skipping:  # close up to the matching tag (forgives bad nesting)
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag in _HEADINGS or tag in _BLOCK_TAGS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)

    def flush(self) -> None:
        text = clean_line("".join(self.parts).replace("\n", " "))
        self.parts.clear()
        if text:
            self.blocks.append(
                Block(text[:MAX_HEADING_CHARS] if self.heading else text, self.heading)
            )
        self.heading = False


def html_blocks(html: str) -> list[Block]:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    parser.flush()
    return [block for block in parser.blocks if block.heading or len(block.text) > 1]


# --- sentences and passages ---------------------------------------------------------------------


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """Start and end of each sentence of `text` (trimmed), not breaking after abbreviations
    such as "e.g." or initials."""
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        before = text[start : match.start()].rstrip(".!?\"')]")
        last_word = before.rsplit(" ", 1)[-1].lower()
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        yield from _trimmed(text, start, match.start())
        start = match.end()
    yield from _trimmed(text, start, len(text))


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


def _pieces(block: str) -> list[str]:
    """A block as pieces of at most `MAX_PASSAGE_CHARS`, cut at sentence ends (or spaces)."""
    if len(block) <= MAX_PASSAGE_CHARS:
        return [block]
    pieces, current = [], ""
    for start, end in sentence_spans(block):
        sentence = block[start:end]
        while len(sentence) > MAX_PASSAGE_CHARS:
            cut = sentence.rfind(" ", 0, MAX_PASSAGE_CHARS) or MAX_PASSAGE_CHARS
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > PASSAGE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


class _Builder:
    """Appends blocks to the source's text and closes passages as they fill."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.length = 0
        self.passages: list[tuple[int | None, str | None, int, int]] = []
        self.pending: list[tuple[int, str]] = []  # (offset, piece) of the passage being filled
        self.heading: str | None = None

    def append(self, text: str) -> int:
        offset = self.length
        self.out.append(text)
        self.length += len(text)
        return offset

    def close(self, page: int | None) -> None:
        if self.pending:
            start = self.pending[0][0]
            end = self.pending[-1][0] + len(self.pending[-1][1])
            self.passages.append((page, self.heading, start, end))
            self.pending.clear()

    def section(self, section: Section) -> None:
        if self.out:
            self.append("\n\n")
        first = True
        for block in section.blocks:
            for piece in [block.text] if block.heading else _pieces(block.text):
                if not first:
                    self.append("\n")
                first = False
                if block.heading:
                    self.close(section.page)
                    self.heading = piece[:MAX_HEADING_CHARS]
                    self.append(piece)
                    continue
                if self.pending:
                    filled = self.length - self.pending[0][0]
                    if filled + 1 + len(piece) > PASSAGE_CHARS:
                        self.close(section.page)
                self.pending.append((self.append(piece), piece))
        self.close(section.page)


def build(sections: list[Section]) -> Extracted:
    """The source's text and its passages: blocks joined by newlines, sections by a blank
    line; a passage never spans two sections or two headings."""
    builder = _Builder()
    for section in sections:
        builder.section(section)
    text = "".join(builder.out)
    return Extracted(
        text,
        [
            PassageDraft(ordinal, page, heading, start, end, text[start:end])
            for ordinal, (page, heading, start, end) in enumerate(builder.passages)
        ],
    )


# --- what a file is ---------------------------------------------------------------------------

_HTML_START = re.compile(r"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_HTML_TAGS = re.compile(r"<(p|div|h[1-6]|article|section|table|ul|a)\b[^>]*>", re.I)
_MD_SIGNS = re.compile(r"^(#{1,6}\s+\S|[-*+]\s+\S|\d+\.\s+\S|```)", re.M)
MARKDOWN_SUFFIXES = (".md", ".markdown")


def text_kind(text: str, filename: str) -> str:
    """html, markdown or text, from the content (and a Markdown file's name)."""
    head = text[:4096]
    if _HTML_START.match(head) or len(_HTML_TAGS.findall(head)) >= 3:
        return "html"
    if filename.lower().endswith(MARKDOWN_SUFFIXES) or len(_MD_SIGNS.findall(head)) >= 2:
        return "markdown"
    return "text"


def decode_text(data: bytes) -> str | None:
    """UTF-8 text without control characters (other than tabs and line ends), or None."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text.replace("\x0c", "")) else text


def sections_of(kind: str, text: str) -> list[Section]:
    """Blocks of a text source (a PDF's come page by page from `pdf_blocks`)."""
    if kind == "html":
        return [Section(None, html_blocks(text))]
    return [Section(None, text_blocks(text, markdown=kind == "markdown"))]
