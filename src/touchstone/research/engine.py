"""The offline extractive engine: a report made of the sources' own sentences.

No model and no download: the question's terms retrieve passages (PostgreSQL full text),
each retrieved sentence is scored by the question terms it holds (weighted by how rare they
are among the candidates, with a bonus for adjacent pairs and for the passage's rank), near
duplicates are dropped, and the best `max_sentences` are written, the best first and the
rest in document order. Every sentence keeps the passage it was read from, so its citation
is checked by looking: the passage's text at the cited offsets is the sentence.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from touchstone.research.extraction import sentence_spans

ENGINE = "extractive"
STEPS = ("plan", "retrieve", "select", "write", "check")
RETRIEVE_PASSAGES = 40
MIN_SENTENCE_CHARS = 25
MAX_SENTENCE_CHARS = 600
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves describe explain tell many much kind kinds type types called name
    named give list""".split()  # noqa: SIM905 (a word list reads better as text)
)


def stem(word: str) -> str:
    """A light English stem (plural and verb endings): enough to match "nuts" with "nut"."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The question's content words, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered not in STOPWORDS and (len(lowered) > 1 or lowered.isdigit()):
            seen.setdefault(lowered, None)
    return list(seen)


def plan(question: str) -> dict[str, Any]:
    """The question's terms, and the keyword query that retrieves passages holding any."""
    words = terms(question) or [w.lower() for w in _WORD.findall(question)]
    return {"terms": words, "query": " or ".join(words)}


@dataclass(frozen=True, slots=True)
class Candidate:
    passage_id: str
    source_id: str
    start: int
    end: int
    text: str
    passage_rank: int


def candidates(passages: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Every sentence of the retrieved passages that could stand alone in a report."""
    found = []
    for rank, passage in enumerate(passages):
        text = passage["text"]
        for start, end in sentence_spans(text):
            sentence = text[start:end]
            if not MIN_SENTENCE_CHARS <= len(sentence) <= MAX_SENTENCE_CHARS:
                continue
            letters = sum(c.isalpha() for c in sentence)
            if letters < len(sentence) * 0.5 or len(sentence.split()) < 4:
                continue
            found.append(Candidate(passage["id"], passage["source_id"], start, end, sentence, rank))
    return found


def select(
    question_terms: list[str], passages: Sequence[Mapping[str, Any]], max_sentences: int
) -> list[dict[str, Any]]:
    """The best sentences for the question, scored and without near duplicates."""
    wanted = [stem(t) for t in question_terms]
    wanted_set = set(wanted)
    pairs = set(itertools.pairwise(wanted))
    pool = candidates(passages)
    stems_of = [[stem(w) for w in _WORD.findall(c.text)] for c in pool]
    document_frequency = Counter(s for stems in stems_of for s in set(stems) & wanted_set)
    total = max(len(pool), 1)
    scored = []
    for candidate, stems in zip(pool, stems_of, strict=True):
        present = set(stems) & wanted_set
        if not present:
            continue
        weight = sum(math.log(1 + total / document_frequency[s]) for s in present)
        adjacent = sum(1 for pair in itertools.pairwise(stems) if pair in pairs)
        length = len(stems)
        score = (weight + 0.5 * adjacent) / (1 + abs(length - 22) / 40)
        score *= 1 + 0.3 / (1 + candidate.passage_rank)
        scored.append((score, candidate, set(stems)))
    scored.sort(key=lambda item: -item[0])
    chosen: list[tuple[float, Candidate, set[str]]] = []
    for score, candidate, words in scored:
        if any(_similar(words, other) for _, _, other in chosen):
            continue
        chosen.append((score, candidate, words))
        if len(chosen) == max_sentences:
            break
    return [
        {
            "passage_id": c.passage_id,
            "source_id": c.source_id,
            "start": c.start,
            "end": c.end,
            "text": c.text,
            "score": round(score, 4),
        }
        for score, c, _ in chosen
    ]


def _similar(a: set[str], b: set[str]) -> bool:
    return len(a & b) / max(len(a | b), 1) > 0.7


def write(
    question: str, selected: list[dict[str, Any]], passages: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The draft report: the best sentence first, then the others in document order, each
    with its citation; the sources in the order they are first cited."""
    if not selected:
        return {"question": question, "engine": ENGINE, "sentences": [], "sources": []}
    lead, rest = selected[0], selected[1:]

    def position(item: dict[str, Any]) -> tuple[str, int, int]:
        passage = passages[item["passage_id"]]
        return (item["source_id"], passage["ordinal"], item["start"])

    ordered = [lead, *sorted(rest, key=position)]
    sentences = []
    for item in ordered:
        passage = passages[item["passage_id"]]
        citation = {
            "source_id": item["source_id"],
            "passage_id": item["passage_id"],
            "start": item["start"],
            "end": item["end"],
            "char_start": passage["char_start"] + item["start"],
            "char_end": passage["char_start"] + item["end"],
            "page": passage["page"],
        }
        sentences.append({"text": item["text"], "citations": [citation]})
    return {"question": question, "engine": ENGINE, "sentences": sentences}


def check(
    draft: dict[str, Any],
    passages: Mapping[str, Mapping[str, Any]],
    allowed_sources: set[str],
    titles: Mapping[str, str],
) -> dict[str, Any]:
    """Keep a citation only when its passage exists, belongs to one of the analysis's
    sources and holds the sentence at the cited offsets; a sentence left with no citation
    is removed. The report lists its sources with the passages it cites."""
    kept, held, failed = [], 0, 0
    for sentence in draft["sentences"]:
        good = []
        for citation in sentence["citations"]:
            passage = passages.get(citation["passage_id"])
            ok = (
                passage is not None
                and str(passage["source_id"]) == citation["source_id"]
                and citation["source_id"] in allowed_sources
                and passage["text"][citation["start"] : citation["end"]] == sentence["text"]
            )
            held, failed = held + ok, failed + (not ok)
            if ok:
                good.append(citation)
        if good:
            kept.append({**sentence, "citations": good})
    order: dict[str, list[str]] = {}
    for sentence in kept:
        for citation in sentence["citations"]:
            cited = order.setdefault(citation["source_id"], [])
            if citation["passage_id"] not in cited:
                cited.append(citation["passage_id"])
    sources = [
        {
            "id": source_id,
            "title": titles.get(source_id, ""),
            "passages": [
                {
                    "id": p,
                    "ordinal": passages[p]["ordinal"],
                    "page": passages[p]["page"],
                    "link": passage_link(source_id, passages[p]["ordinal"]),
                }
                for p in cited
            ],
        }
        for source_id, cited in order.items()
    ]
    checks = {
        "citations": held + failed,
        "held": held,
        "failed": failed,
        "sentences_removed": len(draft["sentences"]) - len(kept),
    }
    return {**draft, "sentences": kept, "sources": sources, "checks": checks}


# --- renderings -------------------------------------------------------------------------------


def _numbering(report: Mapping[str, Any]) -> dict[str, int]:
    return {source["id"]: n for n, source in enumerate(report["sources"], start=1)}


def passage_link(source_id: str, ordinal: int) -> str:
    """The exact passage, through the passages list (sorted by position, one a page)."""
    return f"/api/v1/research/sources/{source_id}/passages?offset={ordinal}&limit=1"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the sentences with `[n]` markers, then the numbered sources
    and the passages each cites (links to the passage)."""
    numbers = _numbering(report)
    escaped_question = _md_escape(report["question"])
    lines = [f"# {escaped_question}", ""]
    if not report["sentences"]:
        lines.append("_No passage of the sources answers this question._")
    for sentence in report["sentences"]:
        marks = "".join(sorted({f"[{numbers[c['source_id']]}]" for c in sentence["citations"]}))
        lines.append(f"- {_md_escape(sentence['text'])} {marks}")
    lines += ["", "## Sources", ""]
    for source in report["sources"]:
        n = numbers[source["id"]]
        links = ", ".join(f"[passage {p['ordinal'] + 1}]({p['link']})" for p in source["passages"])
        lines.append(f"{n}. {_md_escape(source['title'])} — {links}")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def html_document(report: Mapping[str, Any]) -> str:
    """The report as a small standalone HTML page; every text from a source is escaped."""
    numbers = _numbering(report)
    e = html.escape
    items = []
    for sentence in report["sentences"]:
        cited = sorted({numbers[c["source_id"]] for c in sentence["citations"]})
        marks = "".join(f'<sup><a href="#source-{n}">[{n}]</a></sup>' for n in cited)
        items.append(f"<li>{e(sentence['text'])}{marks}</li>")
    sources = []
    for source in report["sources"]:
        n = numbers[source["id"]]
        links = ", ".join(
            f'<a href="{e(p["link"])}">passage {p["ordinal"] + 1}</a>' for p in source["passages"]
        )
        sources.append(f'<li id="source-{n}">{e(source["title"])} — {links}</li>')
    body = (
        f"<ul>{''.join(items)}</ul>"
        if items
        else "<p>No passage of the sources answers this question.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(report['question'])}</title></head><body>"
        f"<h1>{e(report['question'])}</h1>{body}"
        f"<h2>Sources</h2><ol>{''.join(sources)}</ol></body></html>\n"
    )
