"""List conventions: `limit` (capped) + `offset`, a whitelisted sort, and a cheap total."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Response
from pydantic import BaseModel, Field
from pydantic_core import to_json
from sqlalchemy import BindParameter, bindparam, func, over, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from touchstone.core.auth import Principal
from touchstone.core.errors import InvalidInput
from touchstone.core.query_params import query_model
from touchstone.core.reads import AnySelect, CompiledQuery, Statements, TenantRead, compile_query

MAX_LIMIT = 100
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Sortable = Mapping[str, ColumnElement[Any] | QueryableAttribute[Any]]


class PageParams(BaseModel):
    limit: int = Field(20, ge=1, le=MAX_LIMIT, description="Items per page")
    offset: int = Field(0, ge=0, le=1_000_000)
    sort: str | None = Field(
        None, max_length=40, pattern=r"^-?[a-z_]+$", description="Field, '-' for descending"
    )


PageDep = Annotated[PageParams, Depends(query_model(PageParams))]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def order_by(params: PageParams, columns: Sortable, default: str) -> list[ColumnElement[Any]]:
    """Translate `sort=-created_at` into ORDER BY using only whitelisted columns."""
    return sort_clause(params.sort or default, columns)


def sort_clause(sort: str, columns: Sortable) -> list[ColumnElement[Any]]:
    name = sort.removeprefix("-")
    if name not in columns:
        raise InvalidInput(f"Cannot sort by '{name}'; choose one of: {', '.join(sorted(columns))}")
    column = columns[name]
    return [column.desc() if sort.startswith("-") else column.asc()]


async def paginate(
    session: AsyncSession, query: AnySelect, params: PageParams
) -> tuple[Sequence[Any], int]:
    """One round trip: the page's rows plus `count(*) over ()` for the total.

    A one-entity query yields its objects; a multi-column query yields its rows.
    """
    rows = (
        await session.execute(
            query.add_columns(over(func.count()).label("_total"))
            .limit(params.limit)
            .offset(params.offset)
        )
    ).all()
    if not rows:
        if params.offset == 0:
            return [], 0
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        return [], (await session.execute(counted)).scalar_one()
    # column_descriptions has one entry per selected entity; selected_columns would count
    # every column of an entity, so `select(Branch)` would come back as (Branch, total) rows.
    items = [row[0] for row in rows] if len(query.column_descriptions) == 1 else rows
    return items, rows[0][-1]


Items = list[dict[str, Any]]


def page_response(items: Items, total: int, params: PageParams) -> Response:
    """The page as JSON, serialised straight from the items of `read_page`, whose query was
    checked when it was compiled to select exactly the item model's fields; validating each
    item into the model again would double the cost of a read's serialisation."""
    page = {"items": items, "total": total, "limit": params.limit, "offset": params.offset}
    return Response(to_json(page), media_type="application/json")


def page_of(model: type[M], rows: Sequence[Any], total: int, params: PageParams) -> Page[M]:
    return Page[model](  # type: ignore[valid-type]
        items=[model.model_validate(row) for row in rows],
        total=total,
        limit=params.limit,
        offset=params.offset,
    )


_TOTAL = "_total"


@dataclass(frozen=True, slots=True)
class PageQueries:
    """A list query compiled for `core.reads`: the page with the total on each row, and the
    total alone for a page past the end (which has no rows to carry it)."""

    page: CompiledQuery
    total: CompiledQuery
    fields: tuple[str, ...]
    """The item model's fields: the page's columns, before the total."""


def page_queries(
    query: AnySelect,
    order: Sequence[ColumnElement[Any]],
    *tiebreak: ColumnElement[Any] | QueryableAttribute[Any],
    item: type[BaseModel],
) -> PageQueries:
    """Compile `query` as a page (bound `limit`/`offset`) and its count; cache the result.

    The query must select the `item` model's fields, in order, so that `page_response` can
    serialise its rows as they are.
    """
    fields, columns = tuple(item.model_fields), [c.key for c in query.selected_columns]
    if list(fields) != columns:
        raise TypeError(f"the page selects {columns}, not the fields of {item.__name__}")
    # PostgreSQL reads every matching row to sort them anyway, so `count(*) over ()` costs
    # next to nothing, where a second query would join and filter them all again.
    page = (
        query.add_columns(over(func.count()).label(_TOTAL))
        .order_by(*order, *tiebreak)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    total = select(func.count().label(_TOTAL)).select_from(query.subquery())
    return PageQueries(compile_query(page), compile_query(total), fields)


Condition = Callable[[BindParameter[Any]], ColumnElement[bool]]
"""A list filter: the WHERE clause for its bound value."""


class PageShape:
    """A list route's queries, compiled once for each combination of filters present and
    sort (a route's filters make a handful of shapes; building and compiling SQLAlchemy
    statements per request would cost more than the read)."""

    def __init__(
        self,
        base: AnySelect,
        conditions: Mapping[str, Condition],
        sorts: Sortable,
        default_sort: str,
        *tiebreak: ColumnElement[Any] | QueryableAttribute[Any],
        item: type[BaseModel],
    ) -> None:
        """`base` selects `item`'s fields, bound to `bindparam("org_id")`; each condition
        applies when its value is not None."""
        self.base, self.conditions, self.sorts = base, conditions, sorts
        self.default_sort, self.tiebreak, self.item = default_sort, tiebreak, item
        self._compiled = functools.lru_cache(maxsize=256)(self._compile)

    def plan(
        self, values: Mapping[str, Any], sort: str | None
    ) -> tuple[PageQueries, dict[str, Any]]:
        """The queries for the values given (org_id and the filters; None: not filtered)."""
        present = {name: value for name, value in values.items() if value is not None}
        return self._compiled(
            frozenset(present.keys() - {"org_id"}), sort or self.default_sort
        ), present

    async def read(
        self,
        read: TenantRead,
        page: PageParams,
        filters: Mapping[str, Any] | None = None,
        *,
        by_branch: bool = False,
    ) -> tuple[Items, int]:
        """A page of the caller's org, with `filters` (None: not filtered); `by_branch`: a
        branch-bound caller's own branch only (the shape's `branch_id` condition)."""

        def plan(principal: Principal) -> tuple[PageQueries, dict[str, Any]]:
            values = {"org_id": principal.org_id, **(filters or {})}
            if by_branch:
                values["branch_id"] = principal.branch_scope
            return self.plan(values, page.sort)

        return await read_page(read, plan, page)

    def _compile(self, filters: frozenset[str], sort: str) -> PageQueries:
        query = self.base
        for name in sorted(filters):
            query = query.where(self.conditions[name](bindparam(name)))
        order = sort_clause(sort, self.sorts)
        return page_queries(query, order, *self.tiebreak, item=self.item)


async def read_page(
    read: TenantRead,
    plan: Callable[[Principal], tuple[PageQueries, Mapping[str, Any]]],
    params: PageParams,
) -> tuple[Items, int]:
    """The page's items and the total, for the queries and values `plan` gives the caller:
    one round trip, and a second only for a page past the end."""
    paged = {"limit": params.limit, "offset": params.offset}
    planned: list[PageQueries] = []  # the last one is the read that counted

    def page(principal: Principal) -> Statements:
        queries, values = plan(principal)
        planned.append(queries)
        return [(queries.page, {**values, **paged})]

    def total(principal: Principal) -> Statements:
        queries, values = plan(principal)
        return [(queries.total, values)]

    (rows,) = await read.fetch(page)
    if not rows:
        return [], 0 if params.offset == 0 else (await read.fetch(total))[0][0][0]
    fields, count = planned[-1].fields, rows[0][-1]
    return [dict(zip(fields, row, strict=False)) for row in rows], count  # the total left out
