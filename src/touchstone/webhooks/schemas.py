"""Request and response bodies of the webhooks API."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from touchstone.core.events.hub import TOPIC_FILTER
from touchstone.core.schemas import Flag, InputModel, OutputModel, Trimmed
from touchstone.webhooks.models import MAX_URL_LENGTH, DeliveryStatus

MAX_TOPICS = 20
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=500), Trimmed]
TopicFilter = Annotated[str, StringConstraints(pattern=TOPIC_FILTER.pattern, max_length=80)]
Topics = Annotated[
    list[TopicFilter],
    Field(
        max_length=MAX_TOPICS,
        description="Topics to receive (`appraisal.*` matches a prefix); empty = every topic",
    ),
]


def _normalize_topics(value: list[str] | None) -> list[str] | None:
    return None if value is None else sorted(set(value))


def _not_null(value: object) -> object:
    """PATCH fields may be left out, but an explicit null would reach a NOT NULL column."""
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


class WebhookCreate(InputModel):
    url: Url = Field(description="https URL on a public address")
    description: Description = ""
    topics: Topics = []
    is_active: Flag = True

    _topics = field_validator("topics")(_normalize_topics)


class WebhookUpdate(InputModel):
    url: Url | None = None
    description: Description | None = None
    topics: Topics | None = None
    is_active: Flag | None = None

    _no_nulls = field_validator("url", "description", "topics", "is_active", mode="before")(
        _not_null
    )
    _topics = field_validator("topics")(_normalize_topics)


class WebhookOut(OutputModel):
    id: uuid.UUID
    url: str
    description: str
    topics: list[str]
    is_active: bool
    created_by: uuid.UUID | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`); shown once, never again (rotate to replace)"
    )


class DeliveryOut(OutputModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_seq: int
    topic: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    redelivery_of: uuid.UUID | None


class AttemptOut(OutputModel):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None = Field(description="The first kilobyte of the reply")


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any] = Field(description="The JSON body that was signed and sent")
    attempt_log: list[AttemptOut]

    @field_validator("payload", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value
