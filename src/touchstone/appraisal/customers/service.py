"""Borrowers: personal numbers sealed at rest, masked in every response, searchable.

The phone is searchable without decrypting anything: an exact number matches its keyed
hash (HMAC under a key derived from SECRET_KEY, so a leaked table cannot be brute-forced
offline), and up to four digits match the stored last four.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.appraisal import repository
from touchstone.appraisal.certificate.document import mask_id_number, mask_phone
from touchstone.appraisal.exceptions import CustomerNotFound
from touchstone.appraisal.models import Customer
from touchstone.appraisal.schemas import CustomerCreate, CustomerOut
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.crypto import Sealer
from touchstone.core.db import utcnow
from touchstone.core.errors import InvalidInput
from touchstone.core.pagination import Items, PageParams, PageQueries, PageShape, read_page
from touchstone.core.reads import ItemQuery, TenantRead, read_item
from touchstone.core.storage import StoredObject, file_kind
from touchstone.core.writes import TenantWrite, WritePlan

PHOTO_KIND = file_kind("customer-photo", permission="customers:read")
"""Customers are the bank's, not a branch's: whoever may read customers sees their photos."""

SEAL_PURPOSE = "appraisal.customer.v1"


def sealer(settings: Settings) -> Sealer:
    return Sealer(settings.secret_key.get_secret_value(), SEAL_PURPOSE)


def phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def phone_hash(settings: Settings, phone: str) -> str:
    key = hashlib.sha256(b"appraisal.phone:" + settings.secret_key.get_secret_value().encode())
    return hmac.new(key.digest(), phone_digits(phone).encode(), hashlib.sha256).hexdigest()


def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=customer.id,
        full_name=customer.full_name,
        phone_masked=repository.PHONE_MASK + customer.phone_last4,
        id_document_type=customer.id_document_type,
        id_number_masked=customer.id_number_masked,
        has_photo=customer.photo_key is not None,
        created_at=customer.created_at,
    )


async def create_customer(
    write: TenantWrite, data: CustomerCreate, settings: Settings
) -> CustomerOut:
    def plan(principal: Principal) -> WritePlan[CustomerOut]:
        """Checked for the confirmed caller: one without the permission gets its 403 first."""
        digits = phone_digits(data.phone)
        if len(digits) < 8:
            raise InvalidInput("phone must have at least 8 digits")
        seal = sealer(settings)
        customer = CustomerOut(
            id=uuid.uuid4(),
            full_name=data.full_name,
            phone_masked=repository.PHONE_MASK + digits[-4:],
            id_document_type=data.id_document_type,
            id_number_masked=mask_id_number(data.id_number),
            has_photo=False,
            created_at=utcnow(),
        )
        row = {
            "id": customer.id,
            "org_id": principal.org_id,
            "full_name": data.full_name,
            "phone_sealed": seal.seal(data.phone),
            "phone_hash": phone_hash(settings, data.phone),
            "phone_last4": digits[-4:],
            "id_document_type": data.id_document_type,
            "id_number_sealed": seal.seal(data.id_number),
            "id_number_masked": customer.id_number_masked,
            "created_by": principal.id,
            "created_at": customer.created_at,
        }
        masked = {"phone": mask_phone(data.phone), "id_number": customer.id_number_masked}
        return WritePlan([(repository.NEW_CUSTOMER, row)], customer).audited(
            principal, "customer.created", "customer", customer.id, masked
        )

    return await write.apply(plan)


async def get_customer(
    session: AsyncSession, principal: Principal, customer_id: uuid.UUID
) -> Customer:
    customer = await repository.get_customer(session, principal.org_id, customer_id)
    if customer is None:
        raise CustomerNotFound()
    return customer


async def read_customer(read: TenantRead, customer_id: uuid.UUID) -> dict[str, Any]:
    """`CustomerOut`'s fields (whoever may read customers sees every branch's)."""

    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.CUSTOMER, {"org_id": principal.org_id, "id": customer_id}

    return await read_item(read, plan, CustomerNotFound())


_CUSTOMER_PAGES = PageShape(
    select(*repository.CUSTOMER_COLUMNS).where(Customer.org_id == bindparam("org_id")),
    {
        "pattern": lambda pattern: Customer.full_name.ilike(pattern, escape="\\"),
        "last_digits": lambda digits: Customer.phone_last4.endswith(digits),
        "phone_hash": lambda digest: Customer.phone_hash == digest,
    },
    {"created_at": Customer.created_at, "full_name": Customer.full_name},
    "full_name",
    Customer.id,
    item=CustomerOut,
)


def _search(settings: Settings, name: str | None, phone: str | None) -> dict[str, str | None]:
    """The list filters for a search by part of the name and by phone (None: not filtered)."""
    filters: dict[str, str | None] = {"pattern": None, "last_digits": None, "phone_hash": None}
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        filters["pattern"] = f"%{escaped}%"
    if phone:
        digits = phone_digits(phone)
        if not digits:
            raise InvalidInput("phone must contain digits")
        if len(digits) <= 4:
            filters["last_digits"] = digits
        else:
            filters["phone_hash"] = phone_hash(settings, digits)
    return filters


async def search_customers(
    read: TenantRead,
    page: PageParams,
    settings: Settings,
    *,
    name: str | None,
    phone: str | None,
) -> tuple[Items, int]:
    def plan(principal: Principal) -> tuple[PageQueries, dict[str, Any]]:
        if read.permission is not None:  # first: a bad phone from one who may not search is a 403
            principal.ensure(read.permission)
        values = {"org_id": principal.org_id, **_search(settings, name, phone)}
        return _CUSTOMER_PAGES.plan(values, page.sort)

    return await read_page(read, plan, page)


async def attach_photo(
    session: AsyncSession,
    principal: Principal,
    customer_id: uuid.UUID,
    stored: StoredObject,
) -> Customer:
    """The latest photo is the customer's; earlier ones stay stored as part of the record."""
    customer = await get_customer(session, principal, customer_id)
    customer.photo_key, customer.photo_sha256 = stored.key, stored.sha256
    await record_audit(
        session, principal, "customer.photo_set", "customer", customer.id, {"sha256": stored.sha256}
    )
    return customer
