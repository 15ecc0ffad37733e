"""Queries of the research module, always filtered by org as well as by row-level security;
the reads compiled once at import (`core.reads`, `core.pagination.PageShape`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, bindparam, delete, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from touchstone.core.pagination import PageShape
from touchstone.core.reads import columns_for, item_query, row_query
from touchstone.research.models import TEXT_SEARCH_CONFIG, Analysis, Passage, Source
from touchstone.research.schemas import AnalysisOut, PassageOut, SearchHit, SourceOut

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
_CONFIG: ColumnClause[Any] = literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig")

SOURCE_COLUMNS = columns_for(SourceOut, Source)
SOURCE = item_query(
    select(*SOURCE_COLUMNS).where(Source.org_id == _ORG, Source.id == bindparam("id")), SourceOut
)
SOURCE_PAGES = PageShape(
    select(*SOURCE_COLUMNS).where(Source.org_id == _ORG),
    {"status": lambda value: Source.status == value},
    {"created_at": Source.created_at, "title": Source.title},
    "-created_at",
    Source.id,
    item=SourceOut,
)
PASSAGE_PAGES = PageShape(
    select(*columns_for(PassageOut, Passage)).where(Passage.org_id == _ORG),
    {"source_id": lambda value: Passage.source_id == value},
    {"ordinal": Passage.ordinal},
    "ordinal",
    Passage.id,
    item=PassageOut,
)


def _query(value: BindParameter[Any]) -> Any:
    return func.websearch_to_tsquery(_CONFIG, value)


_RANK = func.ts_rank_cd(Passage.search, _query(bindparam("q")), 32).label("rank")
SEARCH_PAGES = PageShape(
    select(
        Passage.id,
        Passage.source_id,
        Source.title.label("source_title"),
        Passage.ordinal,
        Passage.page,
        Passage.heading,
        Passage.char_start,
        Passage.char_end,
        Passage.text,
        _RANK,
    )
    .join(Source, Source.id == Passage.source_id)
    .where(Passage.org_id == _ORG),
    {
        "q": lambda value: Passage.search.op("@@")(_query(value)),
        "source_id": lambda value: Passage.source_id == value,
    },
    {"rank": _RANK},
    "-rank",
    Passage.source_id,
    Passage.ordinal,
    item=SearchHit,
    total_in_rows=True,  # ranked: every match is ranked and sorted for any page
)

ANALYSIS_COLUMNS = columns_for(AnalysisOut, Analysis)
ANALYSIS = item_query(
    select(*ANALYSIS_COLUMNS).where(Analysis.org_id == _ORG, Analysis.id == bindparam("id")),
    AnalysisOut,
)
ANALYSIS_PAGES = PageShape(
    select(*ANALYSIS_COLUMNS).where(Analysis.org_id == _ORG),
    {"status": lambda value: Analysis.status == value},
    {"created_at": Analysis.created_at},
    "-created_at",
    Analysis.id,
    item=AnalysisOut,
)
REPORT = row_query(
    select(Analysis.status, Analysis.report).where(
        Analysis.org_id == _ORG, Analysis.id == bindparam("id")
    )
)


async def get_source(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, *, for_update: bool = False
) -> Source | None:
    query = select(Source).where(Source.org_id == org_id, Source.id == source_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def source_with_hash(session: AsyncSession, org_id: uuid.UUID, sha256: str) -> Source | None:
    return await session.scalar(
        select(Source).where(Source.org_id == org_id, Source.sha256 == sha256)
    )


async def existing_source_ids(
    session: AsyncSession, org_id: uuid.UUID, source_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    found = await session.scalars(
        select(Source.id).where(Source.org_id == org_id, Source.id.in_(list(source_ids)))
    )
    return set(found)


async def get_analysis(
    session: AsyncSession, org_id: uuid.UUID, analysis_id: uuid.UUID, *, for_update: bool = False
) -> Analysis | None:
    query = select(Analysis).where(Analysis.org_id == org_id, Analysis.id == analysis_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def replace_passages(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    """The source's passages, replaced whole (a rerun of its extraction writes them again)."""
    await session.execute(
        delete(Passage).where(Passage.org_id == org_id, Passage.source_id == source_id)
    )
    if rows:
        await session.execute(insert(Passage), rows)


async def retrieve(
    session: AsyncSession,
    org_id: uuid.UUID,
    query: str,
    source_ids: Sequence[uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The passages that best match the keyword query (ranked), of the given sources."""
    tsquery = func.websearch_to_tsquery(_CONFIG, query)
    statement = (
        select(
            Passage.id,
            Passage.source_id,
            Passage.ordinal,
            Passage.page,
            Passage.char_start,
            Passage.text,
            func.ts_rank_cd(Passage.search, tsquery, 32).label("rank"),
        )
        .where(Passage.org_id == org_id, Passage.search.op("@@")(tsquery))
        .order_by(literal_column("rank").desc(), Passage.source_id, Passage.ordinal)
        .limit(limit)
    )
    if source_ids is not None:
        statement = statement.where(Passage.source_id.in_(list(source_ids)))
    rows = (await session.execute(statement)).mappings().all()
    return [{**row, "id": str(row["id"]), "source_id": str(row["source_id"])} for row in rows]


async def passages_by_id(
    session: AsyncSession, org_id: uuid.UUID, passage_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    rows = (
        await session.execute(
            select(
                Passage.id,
                Passage.source_id,
                Passage.ordinal,
                Passage.page,
                Passage.char_start,
                Passage.text,
            ).where(
                Passage.org_id == org_id,
                Passage.id.in_([uuid.UUID(p) for p in passage_ids]),
            )
        )
    ).mappings()
    return {
        str(row["id"]): {**row, "id": str(row["id"]), "source_id": str(row["source_id"])}
        for row in rows
    }


async def source_titles(
    session: AsyncSession, org_id: uuid.UUID, source_ids: Sequence[str]
) -> dict[str, str]:
    rows = await session.execute(
        select(Source.id, Source.title).where(
            Source.org_id == org_id, Source.id.in_([uuid.UUID(s) for s in source_ids])
        )
    )
    return {str(source_id): title for source_id, title in rows}


async def org_source_ids(session: AsyncSession, org_id: uuid.UUID) -> list[str]:
    return [str(s) for s in await session.scalars(select(Source.id).where(Source.org_id == org_id))]
