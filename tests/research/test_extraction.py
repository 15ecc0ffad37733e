"""Blocks, passages and sentences: passages are exact slices of the text, boilerplate goes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from touchstone.research import extraction


def _check(extracted: extraction.Extracted) -> None:
    for passage in extracted.passages:
        assert extracted.text[passage.char_start : passage.char_end] == passage.text
        assert len(passage.text) <= extraction.MAX_PASSAGE_CHARS


def test_html_loses_its_navigation_scripts_and_footer_and_keeps_headings() -> None:
    page = """<!DOCTYPE html><html class="skin-toc"><head><title>T</title>
    <script>var tracking = 1;</script><style>p {color: red}</style></head><body>
    <nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
    <div class="sidebar">Subscribe to our newsletter</div>
    <h1>Ducks</h1><p>Ducks are <b>water</b> birds &amp; swim well.</p>
    <h2>Food</h2><p>They eat plants, insects and small fish.</p>
    <footer>Copyright 2024 Example Ltd</footer></body></html>"""
    extracted = extraction.build(extraction.sections_of("html", page))
    _check(extracted)
    assert "tracking" not in extracted.text
    assert "newsletter" not in extracted.text
    assert "Home" not in extracted.text
    assert "Copyright" not in extracted.text
    assert "Ducks are water birds & swim well." in extracted.text
    assert [(p.heading, p.text) for p in extracted.passages] == [
        ("Ducks", "Ducks are water birds & swim well."),
        ("Food", "They eat plants, insects and small fish."),
    ]


def test_markdown_headings_and_pdf_lines_are_understood() -> None:
    markdown = "# Nuts\n\nA nut holds a bolt.\n\n## Kinds\n\n- Boots nuts\n- Elastic stop nuts\n"
    extracted = extraction.build(extraction.sections_of("markdown", markdown))
    _check(extracted)
    assert [p.heading for p in extracted.passages] == ["Nuts", "Kinds"]
    page = (
        "The spring keeps the \r\nsections apart.\r\nElastic Stop Nut \r\n"
        "The elastic stop nut is a \r\nstandard nut."
    )
    blocks = extraction.pdf_blocks(page)
    assert blocks == [
        extraction.Block("The spring keeps the sections apart."),
        extraction.Block("Elastic Stop Nut", heading=True),
        extraction.Block("The elastic stop nut is a standard nut."),
    ]


def test_sentences_do_not_break_after_abbreviations() -> None:
    text = "Ducks eat e.g. grass and grain. Dr. Smith agrees. J. R. Tolkien wrote it."
    assert [text[a:b] for a, b in extraction.sentence_spans(text)] == [
        "Ducks eat e.g. grass and grain.",
        "Dr. Smith agrees.",
        "J. R. Tolkien wrote it.",
    ]


def test_the_kind_is_read_from_the_content() -> None:
    assert extraction.text_kind("<!doctype html><p>x</p>", "a.txt") == "html"
    assert extraction.text_kind("# Title\n\n- one\n- two", "notes") == "markdown"
    assert extraction.text_kind("Plain words.", "notes.md") == "markdown"
    assert extraction.text_kind("Plain words.", "notes.txt") == "text"
    assert extraction.decode_text(b"\xff\xfe") is None
    assert extraction.decode_text(b"nul\x00byte") is None


@given(st.text(alphabet=st.sampled_from("ab .\n#-<>p/"), max_size=3000))
def test_any_text_gives_passages_that_are_slices_of_it(text: str) -> None:
    for kind in ("text", "markdown", "html"):
        _check(extraction.build(extraction.sections_of(kind, text)))
