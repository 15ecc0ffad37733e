"""Invitations and password resets, end to end over SMTP: the API queues, a worker sends,
the suite's aiosmtpd server receives; then the link from the mail is used.

These tests commit (the worker reads the queue over its own connections). Retries are due
at once here; production waits 3 ** n seconds between attempts.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.conftest import PASSWORD, Tenant, assert_problem, committed_tenant, login
from tests.identity.conftest import Deliver
from tests.mail import MailServer, html_of, text_of, token_in
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.email.models import OutboundEmail
from touchstone.identity.models import PasswordResetToken

API = "/api/v1"
NEW_PASSWORD = "a brand new passphrase"


def _email(tenant: Tenant, name: str = "member") -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}@{tenant.slug}.example.com"


async def _invite(
    client: httpx.AsyncClient, tenant: Tenant, email: str, full_name: str = "New Member"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/users",
        headers=tenant.headers,
        json={"email": email, "full_name": full_name, "role": "analyst"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _job(client: httpx.AsyncClient, tenant: Tenant, job_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/jobs/{job_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _outbox(committed: Database, tenant: Tenant, email: str) -> OutboundEmail:
    async with committed.transaction(org_id=tenant.org_id) as session:
        query = select(OutboundEmail).where(OutboundEmail.to_address == email)
        return (await session.execute(query)).scalar_one()


async def _ask_reset(client: httpx.AsyncClient, email: str, org: str | None = None) -> None:
    body = {"email": email} | ({"org": org} if org else {})
    response = await client.post(f"{API}/auth/password-reset", json=body)
    assert response.status_code == 202, response.text


async def _confirm(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )


def _only(server: MailServer, address: str) -> EmailMessage:
    (delivered,) = server.to(address)
    assert delivered.recipients == [address]
    return delivered.message


async def test_an_invited_member_receives_the_email_and_accepts_it(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    smtp_server: MailServer,
    settings: Settings,
    deliver: Deliver,
) -> None:
    email = _email(tenant)
    created = await _invite(live_client, tenant, email, full_name="Ravi Kumar")
    job_id = created["invitation"]["email_job_id"]
    assert (await _job(live_client, tenant, job_id))["status"] == "queued"
    assert smtp_server.to(email) == []  # nothing leaves before the worker runs
    await deliver()

    message = _only(smtp_server, email)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["To"].addresses[0].display_name == "Ravi Kumar"
    assert message["From"].addresses[0].addr_spec == "touchstone@localhost"
    assert tenant.slug in message["Subject"]  # the org's name (committed tenants use the slug)
    for part in (text_of(message), html_of(message)):
        assert tenant.slug in part
        assert f"{settings.link_base}/app/account/invitation#token=" in part
    token = token_in(message)
    assert token not in str(created)

    job = await _job(live_client, tenant, job_id)
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    stored = await _outbox(committed, tenant, email)
    assert (stored.status, stored.kind, stored.sealed_message) == ("sent", "invitation", None)

    accepted = await live_client.post(
        f"{API}/auth/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert accepted.status_code == 204, accepted.text
    assert await login(live_client, email, NEW_PASSWORD)


async def test_a_transient_refusal_is_retried_and_the_email_arrives_once(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    smtp_server: MailServer,
    deliver: Deliver,
) -> None:
    email = _email(tenant)
    smtp_server.defer_once(email)  # 451 to the first DATA
    created = await _invite(live_client, tenant, email)
    await deliver()

    _only(smtp_server, email)
    job = await _job(live_client, tenant, created["invitation"]["email_job_id"])
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    stored = await _outbox(committed, tenant, email)
    assert (stored.status, stored.attempts, stored.last_error) == ("sent", 2, None)


async def test_a_permanent_refusal_ends_the_job_at_once_with_the_servers_reason(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    smtp_server: MailServer,
    deliver: Deliver,
) -> None:
    email = _email(tenant)
    smtp_server.refuse(email, "550 5.1.1 No such mailbox here")
    created = await _invite(live_client, tenant, email)
    await deliver()

    assert smtp_server.to(email) == []
    job = await _job(live_client, tenant, created["invitation"]["email_job_id"])
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error"]["code"] == "email_refused"
    assert "550 5.1.1 No such mailbox here" in job["error"]["detail"]
    stored = await _outbox(committed, tenant, email)
    assert stored.status == "failed"
    assert stored.sealed_message is None  # the link inside is erased with it
    assert stored.last_error is not None
    assert "550" in stored.last_error


async def test_password_reset_end_to_end(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    smtp_server: MailServer,
    settings: Settings,
    deliver: Deliver,
) -> None:
    await _ask_reset(live_client, tenant.admin_email)
    await deliver()
    message = _only(smtp_server, tenant.admin_email)
    assert tenant.slug in message["Subject"]
    assert f"{settings.link_base}/app/account/password-reset#token=" in text_of(message)
    token = token_in(message)

    assert (await _confirm(live_client, token)).status_code == 204
    me = await live_client.get(f"{API}/me", headers=tenant.headers)
    assert_problem(me, 401)  # every session of the account ended
    form = {"username": tenant.admin_email, "password": PASSWORD}
    assert_problem(await live_client.post(f"{API}/auth/token", data=form), 401)
    fresh = await login(live_client, tenant.admin_email, NEW_PASSWORD)

    assert_problem(await _confirm(live_client, token), 400, "password_reset_invalid")  # once
    events = await live_client.get(
        f"{API}/audit-events",
        headers={"Authorization": f"Bearer {fresh}"},
        params={"object_type": "user"},
    )
    actions = {e["action"] for e in events.json()["items"]}
    assert {"user.password_reset_requested", "user.password_reset"} <= actions


async def test_an_unknown_email_gets_the_same_answer_and_no_mail(
    live_client: httpx.AsyncClient, tenant: Tenant, smtp_server: MailServer, deliver: Deliver
) -> None:
    unknown = _email(tenant, "nobody")
    answers = [
        await live_client.post(f"{API}/auth/password-reset", json={"email": address})
        for address in (tenant.admin_email, unknown)
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    await deliver()
    assert smtp_server.to(unknown) == []
    assert len(smtp_server.to(tenant.admin_email)) == 1


async def test_each_account_of_an_email_gets_its_own_mail_naming_its_org(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    smtp_server: MailServer,
    deliver: Deliver,
) -> None:
    other = await committed_tenant(committed, settings, live_client)
    email = _email(tenant, "shared")
    for org in (tenant, other):
        response = await live_client.post(
            f"{API}/users",
            headers=org.headers,
            json={"email": email, "full_name": "Shared", "role": "viewer", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text

    await _ask_reset(live_client, email, org=other.slug)  # `org` narrows it to one account
    await deliver()
    (only_other,) = smtp_server.to(email)
    assert other.slug in only_other.message["Subject"]

    await _ask_reset(live_client, email)
    await deliver()
    newest = smtp_server.to(email)[1:]
    assert sorted(tenant.slug in d.message["Subject"] for d in newest) == [False, True]
    in_other = next(d.message for d in newest if other.slug in d.message["Subject"])
    assert (await _confirm(live_client, token_in(in_other))).status_code == 204
    # The link of one org's mail resets that account and no other.
    assert await login(live_client, email, NEW_PASSWORD, org=other.slug)
    assert await login(live_client, email, PASSWORD, org=tenant.slug)


async def test_naming_an_org_without_that_account_sends_nothing(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    smtp_server: MailServer,
    deliver: Deliver,
) -> None:
    other = await committed_tenant(committed, settings, live_client)
    await _ask_reset(live_client, other.admin_email, org=tenant.slug)
    await _ask_reset(live_client, other.admin_email, org=str(tenant.org_id))
    await deliver()
    assert smtp_server.to(other.admin_email) == []


async def test_a_newer_request_revokes_the_earlier_link(
    live_client: httpx.AsyncClient, tenant: Tenant, smtp_server: MailServer, deliver: Deliver
) -> None:
    await _ask_reset(live_client, tenant.admin_email)
    await deliver()
    await _ask_reset(live_client, tenant.admin_email)
    await deliver()
    first, second = (token_in(d.message) for d in smtp_server.to(tenant.admin_email))
    assert first != second
    assert_problem(await _confirm(live_client, first), 400, "password_reset_invalid")
    assert (await _confirm(live_client, second)).status_code == 204


async def test_an_expired_link_and_a_deactivated_account_are_refused(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    smtp_server: MailServer,
    deliver: Deliver,
) -> None:
    await _ask_reset(live_client, tenant.admin_email)
    await deliver()
    token = token_in(_only(smtp_server, tenant.admin_email))
    async with committed.transaction(org_id=tenant.org_id) as session:
        await session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.org_id == tenant.org_id)
            .values(expires_at=PasswordResetToken.created_at)
        )
    assert_problem(await _confirm(live_client, token), 400, "password_reset_invalid")

    member = _email(tenant, "leaver")
    created = await live_client.post(
        f"{API}/users",
        headers=tenant.headers,
        json={"email": member, "full_name": "Leaver", "role": "viewer", "password": PASSWORD},
    )
    await _ask_reset(live_client, member)
    await deliver()
    token = token_in(_only(smtp_server, member))
    deactivated = await live_client.patch(
        f"{API}/users/{created.json()['id']}", headers=tenant.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert_problem(await _confirm(live_client, token), 400, "password_reset_invalid")
    await _ask_reset(live_client, member)  # an inactive account is sent nothing
    await deliver()
    assert len(smtp_server.to(member)) == 1


async def test_line_breaks_in_names_create_no_header_and_markup_is_escaped(
    live_client: httpx.AsyncClient, tenant: Tenant, smtp_server: MailServer, deliver: Deliver
) -> None:
    renamed = await live_client.patch(
        f"{API}/org",
        headers=tenant.headers,
        json={"name": "Evil Bank\r\nBcc: boss@evil.example\r\nX-Injected: org"},
    )
    assert renamed.status_code == 200, renamed.text
    email = _email(tenant)
    full_name = 'Eve <script>alert(1)</script>\r\nBcc: spy@evil.example\nX-Injected: "name"'
    await _invite(live_client, tenant, email, full_name=full_name)
    await deliver()

    message = _only(smtp_server, email)  # the envelope: the invitee and nobody else
    assert smtp_server.to("spy@evil.example") == []
    assert smtp_server.to("boss@evil.example") == []
    assert message.get_all("Bcc") is None
    assert message.get_all("X-Injected") is None
    assert "\n" not in message["Subject"]
    assert "\r" not in message["Subject"]
    (to,) = message["To"].addresses
    assert to.addr_spec == email
    assert "\n" not in to.display_name
    html = html_of(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not any(
        line.startswith(("Bcc:", "X-Injected:")) for line in text_of(message).split("\n")
    )


async def test_an_invitee_whose_mail_never_came_can_use_a_reset_link_instead(
    live_client: httpx.AsyncClient, tenant: Tenant, smtp_server: MailServer, deliver: Deliver
) -> None:
    """The fallback when an invitation was lost: the account has no password yet, a reset
    link sets its first one, and the invitation's own link stops working."""
    email = _email(tenant, "invitee")
    await _invite(live_client, tenant, email)
    await _ask_reset(live_client, email)
    await deliver()
    mails = {d.message["Subject"].split()[0]: d.message for d in smtp_server.to(email)}
    invitation, reset = mails["You"], mails["Reset"]  # "You are invited…", "Reset your…"
    assert (await _confirm(live_client, token_in(reset))).status_code == 204
    assert await login(live_client, email, NEW_PASSWORD)
    late = await live_client.post(
        f"{API}/auth/invitations/accept",
        json={"token": token_in(invitation), "password": "an attacker's password"},
    )
    assert_problem(late, 400, "invitation_invalid")
