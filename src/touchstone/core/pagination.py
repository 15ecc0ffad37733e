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
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from touchstone.core.auth import Principal
from touchstone.core.errors import InvalidInput
from touchstone.core.query_params import query_model
from touchstone.core.reads import (
    AnySelect,
    CompiledQuery,
    Rows,
    Statements,
    TenantRead,
    compile_query,
)

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


def sort_clause(sort: str, columns: Sortable) -> list[ColumnElement[Any]]:
    name = sort.removeprefix("-")
    if name not in columns:
        raise InvalidInput(f"Cannot sort by '{name}'; choose one of: {', '.join(sorted(columns))}")
    column = columns[name]
    return [column.desc() if sort.startswith("-") else column.asc()]


Items = list[dict[str, Any]]


def page_response(items: Items, total: int, params: PageParams) -> Response:
    """The page as JSON, serialised straight from the items of `read_page`, whose query was
    checked when it was compiled to select exactly the item model's fields; validating each
    item into the model again would double the cost of a read's serialisation."""
    page = {"items": items, "total": total, "limit": params.limit, "offset": params.offset}
    return Response(to_json(page), media_type="application/json")


_TOTAL = "_total"


@dataclass(frozen=True, slots=True)
class PageQueries:
    """A list query compiled for `core.reads`: the page, and its total.

    A plain list counts in a statement of its own, sent in the same message: the page then
    reads only the rows it returns (an index in the sort's order makes it `limit` rows of an
    audit log of millions), where `count(*) over ()` on the page made PostgreSQL read and
    sort every matching row on every page. A list whose every row is computed before it can
    be sorted (statistics) carries the total on its rows instead (`total_in_rows`), at no
    extra cost; such a page past the end has no row to carry it, and counts apart."""

    page: CompiledQuery
    total: CompiledQuery
    fields: tuple[str, ...]
    """The item model's fields: the page's columns (before the total, if it carries it)."""
    total_in_rows: bool = False

    def statements(self, values: Mapping[str, Any], params: PageParams) -> Statements:
        """What to send for one page: the page, and the count unless the rows carry it."""
        page = (self.page, {**values, "limit": params.limit, "offset": params.offset})
        return [page] if self.total_in_rows else [page, (self.total, values)]

    def items(self, results: Sequence[Rows]) -> tuple[Items, int | None]:
        """The page's items and total from what `statements` read; the total is None for a
        page past the end of a list whose rows carry it."""
        rows = results[0]
        width = len(self.fields)
        items = [dict(zip(self.fields, row[:width], strict=True)) for row in rows]
        if not self.total_in_rows:
            return items, results[1][0][0]
        return items, rows[0][-1] if rows else None


def page_queries(
    query: AnySelect,
    order: Sequence[ColumnElement[Any]],
    *tiebreak: ColumnElement[Any] | QueryableAttribute[Any],
    item: type[BaseModel],
    total_in_rows: bool = False,
) -> PageQueries:
    """Compile `query` as a page (bound `limit`/`offset`) and its count; cache the result.

    The query must select the `item` model's fields, in order, so that `page_response` can
    serialise its rows as they are. `total_in_rows` for a list sorted by something computed
    from every row (a search's rank): it sorts them all anyway.
    """
    fields, columns = tuple(item.model_fields), [c.key for c in query.selected_columns]
    if list(fields) != columns:
        raise TypeError(f"the page selects {columns}, not the fields of {item.__name__}")
    total = select(func.count().label(_TOTAL)).select_from(query.subquery())
    if total_in_rows:
        query = query.add_columns(over(func.count()).label(_TOTAL))
    page = query.order_by(*order, *tiebreak).limit(bindparam("limit")).offset(bindparam("offset"))
    return PageQueries(compile_query(page), compile_query(total), fields, total_in_rows)


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
        total_in_rows: bool = False,
    ) -> None:
        """`base` selects `item`'s fields, bound to `bindparam("org_id")`; each condition
        applies when its value is not None; `total_in_rows` as for `page_queries`."""
        self.base, self.conditions, self.sorts = base, conditions, sorts
        self.default_sort, self.tiebreak, self.item = default_sort, tiebreak, item
        self.total_in_rows = total_in_rows
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
        return page_queries(
            query, order, *self.tiebreak, item=self.item, total_in_rows=self.total_in_rows
        )


async def read_page(
    read: TenantRead,
    plan: Callable[[Principal], tuple[PageQueries, Mapping[str, Any]]],
    params: PageParams,
) -> tuple[Items, int]:
    """The page's items and the total, for the queries and values `plan` gives the caller,
    in one round trip (a second only to count past the end of a list whose rows carry
    the total)."""
    planned: list[PageQueries] = []  # the last one is the read whose rows were kept

    def page(principal: Principal) -> Statements:
        queries, values = plan(principal)
        planned.append(queries)
        return queries.statements(values, params)

    def total(principal: Principal) -> Statements:
        queries, values = plan(principal)
        return [(queries.total, values)]

    results = await read.fetch(page)
    items, counted = planned[-1].items(results)
    if counted is None:
        counted = 0 if params.offset == 0 else (await read.fetch(total))[0][0][0]
    return items, counted
