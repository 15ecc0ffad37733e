"""Queries of the attendance module, always filtered by org as well as by row-level
security; the reads compiled once at import (`core.reads`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from touchstone.attendance.models import (
    Consent,
    Face,
    Group,
    Mark,
    Membership,
    Person,
    Review,
    Session,
    Settings,
)
from touchstone.attendance.schemas import (
    ConsentOut,
    FaceOut,
    GroupOut,
    MarkOut,
    PersonBrief,
    PersonOut,
    ReviewOut,
    SessionOut,
)
from touchstone.core.reads import columns_for, item_query, row_query
from touchstone.core.writes import insert_query

EF_SEARCH = 100
_ORG: BindParameter[uuid.UUID] = bindparam("org_id")

NEW_GROUP = insert_query(
    Group, ("id", "org_id", "name", "description", "created_at", "timezone", "owner_id")
)
NEW_PERSON = insert_query(Person, ("id", "org_id", "code", "full_name", "contact", "created_at"))

GROUP_COLUMNS = columns_for(GroupOut, Group)
GROUP = item_query(
    select(*GROUP_COLUMNS).where(Group.org_id == _ORG, Group.id == bindparam("id")), GroupOut
)

PERSON_COLUMNS = [
    Person.id,
    Person.code,
    Person.full_name,
    Person.contact,
    func.coalesce(
        select(func.array_agg(Membership.group_id))
        .where(Membership.person_id == Person.id)
        .scalar_subquery(),
        cast(literal_column("'{}'"), ARRAY(Uuid())),
    ).label("group_ids"),
    exists().where(Consent.person_id == Person.id).label("has_consent"),
    select(func.count(Face.id)).where(Face.person_id == Person.id).scalar_subquery().label("faces"),
    Person.created_at,
]
PERSON = item_query(
    select(*PERSON_COLUMNS).where(Person.org_id == _ORG, Person.id == bindparam("id")), PersonOut
)
PERSON_EXISTS = row_query(
    select(Person.id).where(Person.org_id == _ORG, Person.id == bindparam("person_id"))
)
CONSENTS = item_query(
    select(*columns_for(ConsentOut, Consent))
    .where(Consent.org_id == _ORG, Consent.person_id == bindparam("person_id"))
    .order_by(Consent.created_at),
    ConsentOut,
)
FACES = item_query(
    select(*columns_for(FaceOut, Face))
    .where(Face.org_id == _ORG, Face.person_id == bindparam("person_id"))
    .order_by(Face.created_at),
    FaceOut,
)
ALL_FACES = row_query(
    select(Face.person_id, cast(Face.embedding, Text).label("embedding"))
    .where(Face.org_id == _ORG)
    .order_by(Face.person_id, Face.id)
)
SETTINGS = row_query(
    select(Settings.match_threshold, Settings.match_margin).where(Settings.org_id == _ORG)
)
SESSION = item_query(
    select(*columns_for(SessionOut, Session)).where(
        Session.org_id == _ORG, Session.id == bindparam("id")
    ),
    SessionOut,
)
_MEMBERS = select(Membership.person_id).where(
    Membership.group_id
    == select(Session.group_id).where(Session.id == bindparam("id")).scalar_subquery()
)
"""The members of the session's group (so a session's detail is read in one round trip)."""
MARKS = item_query(
    select(
        Mark.person_id,
        Person.code,
        Person.full_name,
        Mark.source,
        Mark.distance,
        Mark.confidence,
        Mark.box,
        Mark.reason,
        Mark.created_at,
        Mark.status,
        Mark.liveness,
    )
    .join(Person, Person.id == Mark.person_id)
    .where(Mark.org_id == _ORG, Mark.session_id == bindparam("id"))
    .order_by(Person.code),
    MarkOut,
)
ABSENT = item_query(
    select(Person.id, Person.code, Person.full_name)
    .where(
        Person.org_id == _ORG,
        Person.id.in_(_MEMBERS),
        ~exists().where(Mark.session_id == bindparam("id"), Mark.person_id == Person.id),
    )
    .order_by(Person.code),
    PersonBrief,
)


REVIEWS = item_query(
    select(
        Review.id,
        Review.session_id,
        Review.candidate_id,
        Person.code.label("candidate_code"),
        Person.full_name.label("candidate_name"),
        Review.distance,
        Review.box,
        Review.status,
        Review.reason,
        Review.created_at,
    )
    .join(Person, Person.id == Review.candidate_id)
    .where(Review.org_id == _ORG, Review.session_id == bindparam("id"))
    .order_by(Review.created_at, Review.id),
    ReviewOut,
)
SESSION_EXISTS = row_query(
    select(Session.id).where(Session.org_id == _ORG, Session.id == bindparam("id"))
)


async def get_review(
    session: AsyncSession, org_id: uuid.UUID, review_id: uuid.UUID
) -> Review | None:
    review = await session.get(Review, review_id)
    return review if review is not None and review.org_id == org_id else None


async def codes_in_org(session: AsyncSession, org_id: uuid.UUID) -> set[str]:
    return set(await session.scalars(select(Person.code).where(Person.org_id == org_id)))


async def groups_by_name(session: AsyncSession, org_id: uuid.UUID) -> dict[str, uuid.UUID]:
    rows = await session.execute(select(Group.name, Group.id).where(Group.org_id == org_id))
    return {row.name: row.id for row in rows}


async def get_group(session: AsyncSession, org_id: uuid.UUID, group_id: uuid.UUID) -> Group | None:
    group = await session.get(Group, group_id)
    return group if group is not None and group.org_id == org_id else None


async def get_person(
    session: AsyncSession, org_id: uuid.UUID, person_id: uuid.UUID
) -> Person | None:
    person = await session.get(Person, person_id)
    return person if person is not None and person.org_id == org_id else None


async def get_session(
    session: AsyncSession, org_id: uuid.UUID, session_id: uuid.UUID
) -> Session | None:
    found = await session.get(Session, session_id)
    return found if found is not None and found.org_id == org_id else None


async def people_in_org(
    session: AsyncSession, org_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Person]:
    rows = await session.scalars(select(Person).where(Person.org_id == org_id, Person.id.in_(ids)))
    return {person.id: person for person in rows}


async def member_ids(
    session: AsyncSession, org_id: uuid.UUID, group_id: uuid.UUID
) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(Membership.person_id).where(
            Membership.org_id == org_id, Membership.group_id == group_id
        )
    )
    return set(rows)


async def has_consent(session: AsyncSession, org_id: uuid.UUID, person_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(exists().where(Consent.org_id == org_id, Consent.person_id == person_id))
    )
    return bool(found)


async def settings_row(session: AsyncSession, org_id: uuid.UUID) -> Settings | None:
    found: Settings | None = await session.scalar(select(Settings).where(Settings.org_id == org_id))
    return found


async def nearest(
    session: AsyncSession, org_id: uuid.UUID, embedding: list[float], limit: int, engine: str
) -> list[tuple[uuid.UUID, float]]:
    """The `limit` enrolled faces nearest `embedding` (HNSW index, Euclidean distance).

    The index walks every org's faces and the org filter (and row-level security) drops
    other orgs' afterwards: without an iterative scan, a small org among large ones could
    get fewer than `limit` rows, or none, and its people would come out unknown. `EF_SEARCH`
    raises recall@1 over pgvector's default 40 (`bench.attendance_search`). Only faces
    enrolled by `engine` are compared: another model's descriptors live in another space."""
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await session.execute(text(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}"))
    distance = Face.embedding.l2_distance(embedding)
    rows = await session.execute(
        select(Face.person_id, distance)
        .where(Face.org_id == org_id, Face.engine == engine)
        .order_by(distance)
        .limit(limit)
    )
    return [(person, float(d)) for person, d in rows]


async def get_face(
    session: AsyncSession, org_id: uuid.UUID, person_id: uuid.UUID, face_id: uuid.UUID
) -> Face | None:
    face = await session.get(Face, face_id)
    if face is None or face.org_id != org_id or face.person_id != person_id:
        return None
    return face


async def face_photo_keys(
    session: AsyncSession, org_id: uuid.UUID, person_id: uuid.UUID
) -> list[str]:
    rows = await session.scalars(
        select(Face.photo_key).where(Face.org_id == org_id, Face.person_id == person_id)
    )
    return list(rows)


async def marks_of(
    session: AsyncSession, org_id: uuid.UUID, session_id: uuid.UUID
) -> dict[uuid.UUID, Mark]:
    rows = await session.scalars(
        select(Mark).where(Mark.org_id == org_id, Mark.session_id == session_id)
    )
    return {mark.person_id: mark for mark in rows}


def parse_vector(text: Any) -> list[float]:
    """pgvector's text form `[0.1,0.2,…]` as floats."""
    return [float(value) for value in str(text).strip("[]").split(",")]
