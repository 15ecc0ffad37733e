"""Who may call an appraisal route, as `Annotated` dependencies every sub-package's router
shares, and what a photo upload accepts (customer photos and item photos alike).

One place, so a permission is spelled once and `purity/`, `certificate/`, `customers/` and
`org_settings/` guard their routes the same way. Reads (GET) take a `TenantRead` for their
permission (`core.reads`); everything that writes, a `Principal` and `SessionDep`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from touchstone.core.auth import Principal
from touchstone.core.deps import require
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.writes import TenantWrite, tenant_write

TESTING = "purity:test"
"""Streaming a purity test: the WebRTC offer and the WebSocket, checked for as long as the
stream lasts."""

Reader = Annotated[Principal, Depends(require("appraisals:read"))]
"""Issuing a certificate (a write that `appraisals:write` or `appraisals:approve` may do)."""
Writer = Annotated[Principal, Depends(require("appraisals:write"))]
Approver = Annotated[Principal, Depends(require("appraisals:approve"))]
Tester = Annotated[Principal, Depends(require(TESTING))]
CustomerWriter = Annotated[Principal, Depends(require("customers:write"))]
SettingsWriter = Annotated[Principal, Depends(require("appraisal_settings:write"))]
DeviceWriter = Annotated[Principal, Depends(require("devices:write"))]

AppraisalReads = Annotated[TenantRead, Depends(tenant_read("appraisals:read"))]
CustomerReads = Annotated[TenantRead, Depends(tenant_read("customers:read"))]
NewCustomer = Annotated[TenantWrite, Depends(tenant_write("customers:write", idempotent=True))]
DeviceReads = Annotated[TenantRead, Depends(tenant_read("devices:write"))]
"""Devices are listed only to who manages them."""

PHOTO_TYPES = frozenset({"image/jpeg", "image/png"})
MAX_PHOTO_BYTES = 10 * 1024 * 1024
API = "/api/v1"
"""Where main.py mounts the authenticated routers: the prefix of the `Location`s we send."""
