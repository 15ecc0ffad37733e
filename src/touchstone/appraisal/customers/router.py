"""Customers HTTP API: create, search by name or phone, read, and set a photo."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, UploadFile

from touchstone.appraisal.customers import service
from touchstone.appraisal.dependencies import (
    MAX_PHOTO_BYTES,
    PHOTO_TYPES,
    CustomerReads,
    CustomerWriter,
    NewCustomer,
)
from touchstone.appraisal.schemas import CustomerCreate, CustomerOut, CustomerSearch
from touchstone.core.deps import SessionDep, SettingsDep, get_settings
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.storage import StorageDep, store_upload

router = ApiRouter()  # tagged by the module router including it


@router.post("/customers", response_model=CustomerOut, status_code=201)
async def create_customer(
    body: CustomerCreate,
    settings: SettingsDep,
    write: NewCustomer,
) -> CustomerOut:
    return await service.create_customer(write, body, settings)


@router.get("/customers", response_model=Page[CustomerOut])
async def search_customers(
    request: Request,
    read: CustomerReads,
    page: PageDep,
    search: Annotated[CustomerSearch, Depends(query_model(CustomerSearch))],
) -> Response:
    """By part of the name, the full phone number, or its last digits (up to four)."""
    settings = await get_settings(request)  # the phone's keyed hash needs the secret key
    items, total = await service.search_customers(
        read, page, settings, name=search.name, phone=search.phone
    )
    return page_response(items, total, page)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def get_customer(customer_id: uuid.UUID, read: CustomerReads) -> CustomerOut:
    return CustomerOut.model_validate(await service.read_customer(read, customer_id))


@router.put("/customers/{customer_id}/photo", response_model=CustomerOut)
@upload_limit(lambda settings: MAX_PHOTO_BYTES + settings.max_body_bytes)
async def set_customer_photo(
    customer_id: uuid.UUID,
    photo: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    principal: CustomerWriter,
) -> CustomerOut:
    await service.get_customer(session, principal, customer_id)
    stored = await store_upload(
        storage,
        principal.org_id,
        photo,
        kind=service.PHOTO_KIND,
        max_bytes=MAX_PHOTO_BYTES,
        allowed_types=PHOTO_TYPES,
    )
    customer = await service.attach_photo(session, principal, customer_id, stored)
    return service.customer_out(customer)
