"""Sign-in, token rotation, sign-out, passwords, invitations and hostile access tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import PASSWORD, Tenant, assert_problem, login
from tests.mail import queued, token_in
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app

API = "/api/v1"
NEW_PASSWORD = "a different and longer passphrase"


async def _sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    return await client.post(
        f"{API}/auth/token", data={"username": email, "password": password, **extra}
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(f"{API}/me", headers=_bearer(token))


async def test_login_issues_working_tokens(
    client: httpx.AsyncClient, settings: Settings, tenant_a: Tenant
) -> None:
    response = await _sign_in(client, tenant_a.admin_email.upper())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert body["org_id"] == str(tenant_a.org_id)
    assert body["refresh_token"].startswith("rt_")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["org"] == str(tenant_a.org_id)
    assert claims["aud"] == settings.jwt_audience
    assert claims["iss"] == settings.jwt_issuer
    me = await _me(client, body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["email"] == tenant_a.admin_email


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    wrong = await _sign_in(client, tenant_a.admin_email, "not the right password")
    unknown = await _sign_in(client, f"nobody-{uuid.uuid4().hex}@example.com")
    bodies = []
    for response in (wrong, unknown):
        body = assert_problem(response, 401, "invalid_credentials")
        assert response.headers["www-authenticate"] == "Bearer"
        assert "access_token" not in body
        bodies.append({k: v for k, v in body.items() if k != "request_id"})
    assert bodies[0] == bodies[1], "responses must not reveal whether the email exists"


async def test_login_form_refuses_control_characters(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    for form in (
        {"username": tenant_a.admin_email + "\x00", "password": PASSWORD},
        {"username": tenant_a.admin_email, "password": PASSWORD + "\x00"},
        {"username": tenant_a.admin_email, "password": PASSWORD, "org": "a\x1bb"},
    ):
        assert_problem(await client.post(f"{API}/auth/token", data=form), 422)


async def test_one_password_opening_two_orgs_asks_which(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """The person's own choice: the same email and password in two orgs' accounts."""
    added = await client.post(
        f"{API}/users",
        headers=tenant_b.headers,
        json={
            "email": tenant_a.admin_email,
            "full_name": "Shared",
            "role": "viewer",
            "password": PASSWORD,
        },
    )
    assert added.status_code == 201, added.text

    body = assert_problem(await _sign_in(client, tenant_a.admin_email), 400, "org_choice_required")
    orgs = {o["org_slug"]: o for o in body["orgs"]}
    assert set(orgs) == {tenant_a.slug, tenant_b.slug}
    assert orgs[tenant_a.slug]["role"] == "org_admin"
    assert orgs[tenant_b.slug]["role"] == "viewer"
    assert orgs[tenant_b.slug]["org_id"] == str(tenant_b.org_id)

    cases = [
        ({"org": tenant_b.slug}, tenant_b, "viewer"),
        ({"org": str(tenant_a.org_id)}, tenant_a, "org_admin"),
        ({"client_id": tenant_b.slug}, tenant_b, "viewer"),
    ]
    for extra, tenant, role in cases:
        response = await _sign_in(client, tenant_a.admin_email, **extra)
        assert response.status_code == 200, (extra, response.text)
        assert response.json()["org_id"] == str(tenant.org_id)
        me = (await _me(client, response.json()["access_token"])).json()
        assert (me["org_id"], me["role"]) == (str(tenant.org_id), role)
        assert "orgs" not in me

    assert_problem(
        await _sign_in(client, tenant_a.admin_email, org="no-such-org"), 401, "invalid_credentials"
    )


async def test_member_of_one_org_cannot_pick_another(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    response = await _sign_in(client, tenant_a.admin_email, org=tenant_b.slug)
    assert_problem(response, 401, "invalid_credentials")


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    first = (await _sign_in(client, tenant_a.admin_email)).json()
    second = await _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert (await _me(client, second_body["access_token"])).status_code == 200
    third = (await _refresh(client, second_body["refresh_token"])).json()
    assert (await _me(client, third["access_token"])).status_code == 200

    reused = await _refresh(client, first["refresh_token"])
    assert_problem(reused, 401, "refresh_token_reused")

    # The whole family is dead: the newest refresh token and every access token of the session.
    assert_problem(await _refresh(client, third["refresh_token"]), 401, "refresh_token_invalid")
    for access in (third["access_token"], second_body["access_token"], first["access_token"]):
        assert_problem(await _me(client, access), 401)
    # Another sign-in of the same user is a different family and lives on.
    assert (await client.get(f"{API}/me", headers=tenant_a.headers)).status_code == 200


async def test_refresh_refuses_garbage(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    assert_problem(await _refresh(client, "rt_" + "x" * 43), 401, "refresh_token_invalid")
    assert_problem(await _refresh(client, tenant_a.token[:200]), 401, "refresh_token_invalid")
    assert_problem(await _refresh(client, "rt_short\x00padding"), 422)


async def test_logout_ends_the_session(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    tokens = (await _sign_in(client, tenant_a.admin_email)).json()
    headers = _bearer(tokens["access_token"])
    assert (await client.get(f"{API}/me", headers=headers)).status_code == 200
    response = await client.post(f"{API}/auth/logout", headers=headers)
    assert response.status_code == 204, response.text
    body = assert_problem(await client.get(f"{API}/me", headers=headers), 401)
    assert body["code"] == "unauthorized"
    assert_problem(await _refresh(client, tokens["refresh_token"]), 401, "refresh_token_invalid")
    assert (await client.get(f"{API}/me", headers=tenant_a.headers)).status_code == 200


async def test_me(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    response = await client.get(f"{API}/me", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["email"] == tenant_a.admin_email
    assert me["org_id"] == str(tenant_a.org_id)
    assert me["role"] == "org_admin"
    assert me["branch_id"] is None
    assert {"users:write", "audit:read", "api_keys:write"} <= set(me["permissions"])
    assert "platform:orgs" not in me["permissions"]
    assert "password_hash" not in response.text


async def test_change_password(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    other_session = await login(client, tenant_a.admin_email)
    url = f"{API}/me/password"

    wrong = await client.post(
        url,
        headers=tenant_a.headers,
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
    )
    assert_problem(wrong, 401, "invalid_credentials")
    assert (await _me(client, other_session)).status_code == 200, "a failed change revokes nothing"
    short = await client.post(
        url, headers=tenant_a.headers, json={"current_password": PASSWORD, "new_password": "short"}
    )
    assert_problem(short, 422)

    changed = await client.post(
        url,
        headers=tenant_a.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    assert (await client.get(f"{API}/me", headers=tenant_a.headers)).status_code == 200
    assert_problem(await _me(client, other_session), 401)
    assert_problem(await _sign_in(client, tenant_a.admin_email), 401, "invalid_credentials")
    assert (await _sign_in(client, tenant_a.admin_email, NEW_PASSWORD)).status_code == 200


async def test_change_password_signs_out_the_accounts_other_sessions_only(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    added = await client.post(
        f"{API}/users",
        headers=tenant_b.headers,
        json={
            "email": tenant_a.admin_email,
            "full_name": "Shared",
            "role": "viewer",
            "password": PASSWORD,
        },
    )
    assert added.status_code == 201, added.text
    in_b = await login(client, tenant_a.admin_email, org=tenant_b.slug)
    in_a = await login(client, tenant_a.admin_email, org=tenant_a.slug)

    changed = await client.post(
        f"{API}/me/password",
        headers=_bearer(in_a),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    assert (await _me(client, in_a)).status_code == 200
    assert_problem(await _me(client, tenant_a.token), 401)
    # The account in B is B's own: its sessions and password are untouched.
    assert (await _me(client, in_b)).status_code == 200
    assert (await _sign_in(client, tenant_a.admin_email, org=tenant_b.slug)).status_code == 200
    assert (await _sign_in(client, tenant_a.admin_email, NEW_PASSWORD)).json()["org_id"] == str(
        tenant_a.org_id
    )


async def test_invitation_flow(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, settings: Settings
) -> None:
    email = f"invitee-{uuid.uuid4().hex[:6]}@{tenant_a.slug}.example.com"
    created = await client.post(
        f"{API}/users",
        headers=tenant_a.headers,
        json={"email": email, "full_name": "Invitee", "role": "analyst"},
    )
    assert created.status_code == 201, created.text
    invitation = created.json()["invitation"]
    assert set(invitation) == {"expires_at", "email_job_id"}
    (mail,) = await queued(database, settings, tenant_a.org_id, email)
    token = token_in(mail)
    assert len(token) >= 32
    assert token not in created.text, "the token goes to the invitee only, never the admin"
    shown = await client.get(f"{API}/users/{created.json()['id']}", headers=tenant_a.headers)
    assert "invitation" not in shown.json()
    assert token not in shown.text

    assert_problem(await _sign_in(client, email, PASSWORD), 401, "invalid_credentials")

    url = f"{API}/auth/invitations/accept"
    assert_problem(await client.post(url, json={"token": token, "password": "short"}), 422)
    accepted = await client.post(url, json={"token": token, "password": NEW_PASSWORD})
    assert accepted.status_code == 204, accepted.text
    signed_in = await _sign_in(client, email, NEW_PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    me = (await _me(client, signed_in.json()["access_token"])).json()
    assert (me["email"], me["role"]) == (email, "analyst")

    again = await client.post(url, json={"token": token, "password": "an attacker's password"})
    assert_problem(again, 400, "invitation_invalid")
    assert_problem(await _sign_in(client, email, "an attacker's password"), 401)
    bogus = await client.post(url, json={"token": "x" * 43, "password": NEW_PASSWORD})
    assert_problem(bogus, 400, "invitation_invalid")


async def test_user_created_with_password_gets_no_invitation(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, settings: Settings
) -> None:
    email = f"direct-{uuid.uuid4().hex[:6]}@example.com"
    created = await client.post(
        f"{API}/users",
        headers=tenant_a.headers,
        json={"email": email, "full_name": "Direct", "role": "viewer", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    assert created.json()["invitation"] is None
    assert await queued(database, settings, tenant_a.org_id, email) == []


# --- hostile access tokens ---------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None
) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


def _hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


HS256 = {"alg": "HS256", "typ": "JWT"}
Forger = Callable[[dict[str, Any], bytes, rsa.RSAPrivateKey], str]

ATTACKS: dict[str, Forger] = {
    "malformed": lambda claims, secret, key: "not.a-jwt",
    "garbage-segments": lambda claims, secret, key: "e30.e30.e30",
    "expired": lambda claims, secret, key: _forge(
        HS256,
        claims
        | {
            "iat": int(time.time()) - 3600,
            "nbf": int(time.time()) - 3600,
            "exp": int(time.time()) - 60,
        },
        _hs256(secret),
    ),
    "wrong-audience": lambda claims, secret, key: _forge(
        HS256, claims | {"aud": "someone-else"}, _hs256(secret)
    ),
    "wrong-issuer": lambda claims, secret, key: _forge(
        HS256, claims | {"iss": "https://evil.example"}, _hs256(secret)
    ),
    "missing-session-claim": lambda claims, secret, key: _forge(
        HS256, {k: v for k, v in claims.items() if k != "sid"}, _hs256(secret)
    ),
    "wrong-signature": lambda claims, secret, key: _forge(
        HS256, claims, _hs256(b"some other secret that is long enough")
    ),
    "tampered-claims": lambda claims, secret, key: ".".join(
        [
            _forge(HS256, claims | {"org": str(uuid.uuid4())}, None).rsplit(".", 1)[0],
            _forge(HS256, claims, _hs256(secret)).rsplit(".", 1)[1],
        ]
    ),
    "alg-none": lambda claims, secret, key: _forge({"alg": "none", "typ": "JWT"}, claims, None),
    "alg-none-with-signature": lambda claims, secret, key: _forge(
        {"alg": "none", "typ": "JWT"}, claims, _hs256(secret)
    ),
    "rs256": lambda claims, secret, key: jwt.encode(claims, key, algorithm="RS256"),
    "hs256-keyed-with-rsa-public-pem": lambda claims, secret, key: _forge(
        HS256, claims, _hs256(_public_pem(key))
    ),
    "rs256-header-hs256-signature": lambda claims, secret, key: _forge(
        {"alg": "RS256", "typ": "JWT"}, claims, _hs256(secret)
    ),
}


async def test_hostile_access_tokens_are_refused(
    client: httpx.AsyncClient, settings: Settings, tenant_a: Tenant, rsa_key: rsa.RSAPrivateKey
) -> None:
    """One test, many tokens: each case costs no sign-in (argon2) of its own."""
    claims = jwt.decode(tenant_a.token, options={"verify_signature": False})
    secret = settings.secret_key.get_secret_value().encode()
    # The forger itself makes tokens the API accepts, so each refusal is the attack's doing.
    control = _forge(HS256, claims, _hs256(secret))
    assert (await _me(client, control)).status_code == 200

    accepted = []
    for attack, forge in ATTACKS.items():
        response = await _me(client, forge(claims, secret, rsa_key))
        if response.status_code != 401:
            accepted.append((attack, response.status_code))
            continue
        body = assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer", attack
        assert body["request_id"], attack
        assert "Traceback" not in response.text, attack
    assert accepted == [], "hostile tokens were not refused with 401"


async def test_login_is_rate_limited(
    settings: Settings, database: Database, client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    app = create_app(
        settings.model_copy(update={"login_rate_limit": "2/minute"}), database=database
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as limited:
        for _ in range(2):
            response = await _sign_in(limited, tenant_a.admin_email, "wrong password!")
            assert_problem(response, 401, "invalid_credentials")
        blocked = await _sign_in(limited, tenant_a.admin_email)
        assert_problem(blocked, 429, "rate_limited")
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert "access_token" not in blocked.text
        # The limit is per account and client: another account still gets an answer.
        other = await _sign_in(limited, f"someone-{uuid.uuid4().hex}@example.com")
        assert_problem(other, 401, "invalid_credentials")
    # Each app has its own limiter; the regular app is unaffected.
    assert (await _sign_in(client, tenant_a.admin_email)).status_code == 200


async def test_one_address_cannot_spray_many_accounts(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    app = create_app(
        settings.model_copy(update={"login_rate_limit_per_ip": "3/minute"}), database=database
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as limited:
        for _ in range(3):
            response = await _sign_in(limited, f"guess-{uuid.uuid4().hex}@example.com")
            assert_problem(response, 401, "invalid_credentials")
        blocked = await _sign_in(limited, tenant_a.admin_email)
        assert_problem(blocked, 429, "rate_limited")
