"""Objects of every kind, made through the API by one tenant, for attacks by another.

`FACTORIES` maps a path prefix to the coroutine that makes the object a path of that prefix
names; `World.ids_for(path)` runs the longest matching one (once) and returns values for the
path's parameters. A path whose parameters no factory fills is reported by the sweep, so a
new route cannot be left out silently.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from bench.generators.statements import generate_statement
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.appraisal.conftest import RING, Bank, make_bank
from tests.conftest import Tenant, add_member
from tests.webhooks.test_api import live_event
from touchstone.attendance.models import Face, Review
from touchstone.attendance.service import FACE_PHOTO_KIND
from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.core.storage.base import new_key
from touchstone.statements.models import Statement, StatementTransaction
from touchstone.webhooks.service import on_events

API = "/api/v1"
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def make_platform_admin(connection: AsyncConnection, tenant: Tenant) -> None:
    """Tenant's admin may then use the platform routes (`POST /orgs`) too."""
    await connection.execute(
        text("select set_config('app.org_id', :org, true)"), {"org": str(tenant.org_id)}
    )
    await connection.execute(
        text("update users set is_platform_admin = true where email = :e"),
        {"e": tenant.admin_email},
    )


@functools.cache
def statement_pdf(seed: int = 1) -> bytes:
    return generate_statement("ruled_uk", seed=seed).pdf


@dataclass
class World:
    """Tenant `owner`'s objects; `ids` collects every path parameter a factory filled."""

    client: httpx.AsyncClient
    database: Database
    owner: Tenant
    ids: dict[str, str] = field(default_factory=dict)
    bank: Bank | None = None
    _made: set[Callable[[World], Awaitable[None]]] = field(default_factory=set)

    @property
    def headers(self) -> dict[str, str]:
        return self.owner.headers

    async def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = kwargs.pop("headers", self.headers)
        response = await self.client.post(f"{API}{path}", headers=headers, **kwargs)
        assert response.status_code in (200, 201, 202), (path, response.text)
        body: dict[str, Any] = response.json()
        return body

    async def ids_for(self, path: str) -> dict[str, str]:
        """Values for `path`'s parameters; the missing ones are left out."""
        matching = [prefix for prefix in FACTORIES if path.startswith(prefix)]
        if matching:  # several prefixes can share a factory; it runs once
            await self.make(max(matching, key=len))
        return {name: self.ids[name] for name in PARAM.findall(path) if name in self.ids}

    async def make(self, prefix: str) -> None:
        """Run the factory of `prefix` (once per world)."""
        factory = FACTORIES[prefix]
        if factory not in self._made:
            self._made.add(factory)
            await factory(self)

    async def the_bank(self) -> Bank:
        if self.bank is None:
            self.bank = await make_bank(self.client, self.owner)
        self.ids["customer_id"] = self.bank.customer_id
        self.ids["appraiser_id"] = self.bank.appraiser.id
        return self.bank


async def branch(world: World) -> None:
    code = f"N{uuid.uuid4().hex[:6].upper()}"  # unique: the state machine makes many
    made = await world.post("/branches", json={"name": "North", "code": code})
    world.ids["branch_id"] = made["id"]


async def user(world: World) -> None:
    world.ids["user_id"], _ = await add_member(world.client, world.owner, Role.VIEWER)


async def api_key(world: World) -> None:
    made = await world.post("/api-keys", json={"name": "ci", "scopes": ["statements:read"]})
    world.ids["key_id"] = made["id"]


async def batch(world: World) -> None:
    """A batch with one statement and one transaction row; its job is the world's job."""
    files = [("files", ("march.pdf", statement_pdf(), "application/pdf"))]
    response = await world.client.post(
        f"{API}/batches", headers=world.headers, files=files, data={"label": "Q1"}
    )
    assert response.status_code == 202, response.text
    made = response.json()
    world.ids["job_id"] = response.headers["Location"].rsplit("/", 1)[1]
    world.ids["batch_id"] = made["id"]
    statement_id = made["statements"][0]["id"]
    world.ids["statement_id"] = statement_id
    row = StatementTransaction(
        org_id=world.owner.org_id,
        batch_id=uuid.UUID(made["id"]),
        statement_id=uuid.UUID(statement_id),
        row=1,
        page=1,
        txn_date=dt.date(2026, 3, 1),
        description="TESCO STORES",
        amount=Decimal("-12.50"),
        balance=Decimal("100.00"),
        category="groceries",
    )
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        session.add(row)
        await session.flush()
        world.ids["transaction_id"] = str(row.id)


async def rule(world: World) -> None:
    made = await world.post(
        "/statement-rules",
        json={"name": f"Rent {uuid.uuid4().hex[:6]}", "category": "rent", "keywords": ["landlord"]},
    )
    world.ids["rule_id"] = made["id"]


async def webhook(world: World) -> None:
    made = await world.post("/webhooks", json={"url": "https://hooks.example.com/touchstone"})
    world.ids["webhook_id"] = made["id"]
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        await on_events(session, world.owner.org_id, [live_event(world.owner.org_id, "x.y", 7)])
    listed = await world.client.get(
        f"{API}/webhooks/{made['id']}/deliveries", headers=world.headers
    )
    world.ids["delivery_id"] = listed.json()["items"][0]["id"]


async def device(world: World) -> None:
    bank = await world.the_bank()
    made = await world.post("/devices", json={"name": "Bench", "appraiser_id": bank.appraiser.id})
    world.ids["device_id"] = made["id"]


async def customer(world: World) -> None:
    bank = await world.the_bank()
    photo = {"photo": ("face.png", PNG, "image/png")}
    response = await world.client.put(
        f"{API}/customers/{bank.customer_id}/photo", headers=world.headers, files=photo
    )
    assert response.status_code == 200, response.text


async def appraisal(world: World) -> None:
    """A draft appraisal in the bank's main branch, with one item and a purity session."""
    bank = await world.the_bank()
    appraisal_id = await bank.new_appraisal(RING)
    (item,) = await bank.items(appraisal_id)
    world.ids.update(appraisal_id=appraisal_id, item_id=item["id"])
    session = await world.post(
        f"/appraisals/{appraisal_id}/items/{item['id']}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    world.ids["test_id"] = session["id"]


async def stored_file(world: World) -> None:
    """The statement PDF of the world's batch: a key in the owner's storage."""
    await world.ids_for(f"{API}/batches/")
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        statement = await session.get(Statement, uuid.UUID(world.ids["statement_id"]))
        assert statement is not None
        world.ids["key"] = statement.storage_key


async def attendance_group(world: World) -> None:
    made = await world.post("/attendance/groups", json={"name": f"10{uuid.uuid4().hex[:6]}"})
    world.ids["group_id"] = made["id"]


async def attendance_person(world: World) -> None:
    """A student with consent recorded, in the world's group."""
    await world.make(f"{API}/attendance/groups/")
    made = await world.post(
        "/attendance/people", json={"code": f"SV{uuid.uuid4().hex[:6]}", "full_name": "Student"}
    )
    world.ids["person_id"] = made["id"]
    await world.post(
        f"/attendance/people/{made['id']}/consents",
        json={"given_by": "Parent", "purpose": "attendance"},
    )
    await world.post(
        f"/attendance/groups/{world.ids['group_id']}/members",
        json={"person_ids": [made["id"]]},
    )
    face = Face(  # enrolling through the API needs a real face photo; the row is enough here
        org_id=world.owner.org_id,
        person_id=uuid.UUID(made["id"]),
        embedding=[0.01] * 128,
        engine="dlib",
        photo_key=new_key(world.owner.org_id, FACE_PHOTO_KIND),
        photo_sha256="0" * 64,
        quality={},
        enrolled_by=world.owner.org_id,
    )
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        session.add(face)
        await session.flush()
        world.ids["face_id"] = str(face.id)


async def attendance_session(world: World) -> None:
    await world.make(f"{API}/attendance/groups/")
    made = await world.post(
        f"/attendance/groups/{world.ids['group_id']}/sessions", json={"label": "Period 1"}
    )
    world.ids["session_id"] = made["id"]


async def attendance_review(world: World) -> None:
    """A doubtful face queued in the world's session (a class photo is not needed here)."""
    await world.make(f"{API}/attendance/sessions/")
    await world.make(f"{API}/attendance/people/")
    review = Review(
        org_id=world.owner.org_id,
        session_id=uuid.UUID(world.ids["session_id"]),
        candidate_id=uuid.UUID(world.ids["person_id"]),
        distance=0.6,
        box=[0, 0, 10, 10],
        photo_key=new_key(world.owner.org_id, FACE_PHOTO_KIND),
        status="open",
    )
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        session.add(review)
        await session.flush()
        world.ids["review_id"] = str(review.id)


async def ar_project(world: World) -> None:
    """AR projects belong to companies: the owner's org becomes one (banks hold none)."""
    async with world.database.transaction(org_id=world.owner.org_id) as session:
        await session.execute(
            text("update orgs set kind = 'company' where id = :id"), {"id": world.owner.org_id}
        )
    made = await world.post("/arcontent/projects", json={"name": f"P{uuid.uuid4().hex[:6]}"})
    world.ids["project_id"] = made["id"]


async def ar_content(world: World) -> None:
    await world.make(f"{API}/arcontent/projects/")
    made = await world.post(
        f"/arcontent/projects/{world.ids['project_id']}/contents", json={"title": "Poster"}
    )
    world.ids["content_id"] = made["id"]


async def research_source(world: World) -> None:
    """Pasted text (unique per world: the same text twice is a duplicate source)."""
    made = await world.post(
        "/research/text-sources",
        json={"title": "Notes", "text": f"Ducks eat water plants. {uuid.uuid4().hex}"},
    )
    world.ids["source_id"] = made["id"]


async def research_analysis(world: World) -> None:
    await world.make(f"{API}/research/sources/")
    made = await world.post(
        "/research/analyses",
        json={"question": "What do ducks eat?", "source_ids": [world.ids["source_id"]]},
    )
    world.ids["analysis_id"] = made["id"]


async def own_org(world: World) -> None:
    """Platform routes name an org: the owner's own (a platform admin's are tried too)."""
    world.ids["org_id"] = str(world.owner.org_id)


FACTORIES: dict[str, Callable[[World], Awaitable[None]]] = {
    f"{API}/branches/": branch,
    f"{API}/users/": user,
    f"{API}/api-keys/": api_key,
    f"{API}/jobs/": batch,
    f"{API}/batches/": batch,
    f"{API}/statement-rules/": rule,
    f"{API}/webhooks/": webhook,
    f"{API}/devices/": device,
    f"{API}/customers/": customer,
    f"{API}/appraisals/": appraisal,
    f"{API}/purity-sessions/": appraisal,
    f"{API}/files/": stored_file,
    f"{API}/attendance/groups/": attendance_group,
    f"{API}/attendance/people/": attendance_person,
    f"{API}/attendance/sessions/": attendance_session,
    f"{API}/attendance/reviews/": attendance_review,
    f"{API}/arcontent/projects/": ar_project,
    f"{API}/arcontent/contents/": ar_content,
    f"{API}/research/sources/": research_source,
    f"{API}/research/analyses/": research_analysis,
    f"{API}/platform/orgs/": own_org,
}


# --- request bodies from the OpenAPI document ------------------------------------------

_FORMATS = {
    "uuid": lambda: str(uuid.uuid4()),
    "date-time": lambda: "2026-01-01T00:00:00Z",
    "date": lambda: "2026-01-01",
    "email": lambda: f"x-{uuid.uuid4().hex[:6]}@example.com",
}
SAMPLES: dict[str, Any] = {
    "category": "groceries",
    "sdp": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
    "reason": "read again by hand",
    "scopes": ["statements:read"],
    "keywords": ["landlord"],
    "role": "viewer",  # the first in the enum is platform_admin, which only its peers grant
    "url": "https://hooks.example.com/touchstone",  # public in the tests' fake DNS
}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def sample(
    document: dict[str, Any], schema: dict[str, Any], name: str = "", *, longest: bool = False
) -> Any:
    """A small valid value for `schema`: required properties (and optional ones named in
    `SAMPLES`, which get a value known to pass the service's own checks), the first choice
    of any union or enum."""
    schema = resolve(document, schema)
    if name in SAMPLES:
        return SAMPLES[name]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            options = [s for s in schema[union] if resolve(document, s).get("type") != "null"]
            return sample(document, options[0], name, longest=longest) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {
            key: sample(document, properties[key], key, longest=longest)
            for key in properties
            if key in schema.get("required", []) or key in SAMPLES
        }
    if kind == "array":
        count = schema.get("maxItems", 1) if longest else schema.get("minItems", 0)
        return [sample(document, schema["items"], name, longest=longest)] * count
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1) or 1
    if kind == "boolean":
        return True
    if fmt := _FORMATS.get(schema.get("format", "")):
        return fmt()
    if longest and "maxLength" in schema and "pattern" not in schema:
        return "ॐ" * int(schema["maxLength"])  # three bytes in UTF-8: byte limits show too
    return "x" * max(int(schema.get("minLength", 1)), 1)


def request_body(
    document: dict[str, Any], operation: dict[str, Any], *, longest: bool = False
) -> dict[str, Any]:
    """httpx keyword arguments for a valid body of `operation` (none if it takes none);
    `longest` fills every free-text string to its maxLength."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        return {"json": sample(document, schema, longest=longest)}
    if "multipart/form-data" in content:
        schema = resolve(document, content["multipart/form-data"]["schema"])
        files = [
            (key, ("statement.pdf", statement_pdf(), "application/pdf"))
            if schema["properties"][key].get("type") == "array"
            else (key, ("photo.png", PNG, "image/png"))
            for key in schema.get("required", [])
        ]
        return {"files": files}
    return {}
