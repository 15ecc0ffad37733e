"""The SSRF policy, the pinned sender and the signature, without a database.

Every connection here goes to a receiver on 127.0.0.x; names resolve through a table.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.webhooks.conftest import LOOPBACK_ONLY, NAMES, Receiver, fake_resolver, only_localhost

from touchstone.webhooks.exceptions import TargetRefused, TargetUnresolvable
from touchstone.webhooks.sender import MAX_REDIRECTS, send_webhook
from touchstone.webhooks.signing import (
    SignatureError,
    compute_signature,
    new_secret,
    signature_header,
    verify_signature,
)
from touchstone.webhooks.targets import TargetPolicy, address_problem

# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared address space"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (a refused address, not a bind)
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # documentation range
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:5", "private"),  # NAT64 of 10.0.0.5
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None
    assert reason in problem
    with pytest.raises(TargetRefused):
        TargetPolicy().check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None
    TargetPolicy().check_address(ipaddress.ip_address(address))


def test_configuration_can_allow_private_or_listed_networks() -> None:
    TargetPolicy(allow_private=True).check_address(ipaddress.ip_address("10.0.0.5"))
    policy = TargetPolicy(allowed_networks=LOOPBACK_ONLY)
    policy.check_address(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(TargetRefused, match=r"127\.0\.0\.2"):
        policy.check_address(ipaddress.ip_address("127.0.0.2"))


# --- URLs and DNS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "must use https"),
        ("ftp://hooks.example.com/x", "must use https"),
        ("https://user:pw@hooks.example.com/x", "user name or password"),
        ("https:///x", "must name a host"),
        ("https://exa mple.com/", "not a valid host name"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://internal.example.com/x", "10.0.0.5"),
        ("https://mixed.example.com/x", "10.0.0.5"),  # every address must pass, not the first
        ("https://v6.example.com/x", "loopback"),
    ],
)
async def test_vetting_refuses_bad_targets(url: str, message: str) -> None:
    with pytest.raises(TargetRefused, match=message):
        await TargetPolicy(resolver=fake_resolver(NAMES)).vet(url)


async def test_vetting_resolves_and_keeps_every_address() -> None:
    target = await TargetPolicy(resolver=fake_resolver(NAMES)).vet("https://hooks.example.com/x")
    assert (target.host, target.port) == ("hooks.example.com", 443)
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"),)
    with pytest.raises(TargetUnresolvable):
        await TargetPolicy(resolver=fake_resolver(NAMES)).vet("https://nowhere.example.com/")
    http = await TargetPolicy(allow_http=True, resolver=fake_resolver(NAMES)).vet(
        "http://hooks.example.com:8080/x"
    )
    assert http.port == 8080


# --- signatures --------------------------------------------------------------------------


def test_signature_round_trip_and_tampering() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = b'{"event_id":"e-1","data":{"karat":"22K"}}'
    header = signature_header(secret, 1_700_000_000, body)
    assert header == f"t=1700000000,v1={compute_signature(secret, 1_700_000_000, body)}"
    verify_signature(secret, header, body, now=1_700_000_010)
    verify_signature(secret, header, body.decode(), now=1_700_000_010)  # str bodies too
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(secret, header, body.replace(b"22K", b"24K"), now=1_700_000_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(new_secret(), header, body, now=1_700_000_010)
    with pytest.raises(SignatureError, match="does not match"):  # the timestamp is signed too
        verify_signature(secret, header.replace("t=1700000000", "t=1700000005"), body, now=1.7e9)


def test_stale_and_malformed_signatures_are_refused() -> None:
    secret = new_secret()
    body = b"{}"
    header = signature_header(secret, 1_700_000_000, body)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(secret, header, body, now=1_700_000_301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(secret, header, body, now=1_699_999_000)  # from the future
    verify_signature(secret, header, body, tolerance_seconds=3600, now=1_700_000_301)
    for bad in ("", "v1=abc", "t=1700000000", "t=soon,v1=abc", "garbage"):
        with pytest.raises(SignatureError):
            verify_signature(secret, bad, body, now=1_700_000_000)
    rotated = f"{header},v1={'0' * 64}"  # extra signatures are tolerated
    verify_signature(secret, rotated, body, now=1_700_000_000)


# --- the sender --------------------------------------------------------------------------


async def test_redirects_are_followed_and_vetted_at_every_hop(receiver: Receiver) -> None:
    other = await Receiver(host="127.0.0.2").start()
    try:
        receiver.script("/hop", (307, {"Location": "/final"}, b""))
        receiver.script("/evil", (302, {"Location": other.url("/steal")}, b""))
        receiver.script("/loop", *[(302, {"Location": "/loop"}, b"")] * 10)
        policy = only_localhost()

        ok = await send_webhook(policy, receiver.url("/hop"), b"{}", {}, deadline_seconds=5)
        assert (ok.succeeded, ok.status_code) == (True, 200)
        assert [r.path for r in receiver.requests] == ["/hop", "/final"]
        assert all(r.method == "POST" and r.body == b"{}" for r in receiver.requests)

        evil = await send_webhook(policy, receiver.url("/evil"), b"{}", {}, deadline_seconds=5)
        assert evil.refused
        assert not evil.succeeded
        assert evil.status_code == 302
        assert evil.error is not None
        assert "127.0.0.2" in evil.error
        assert "loopback" in evil.error
        assert other.requests == []  # refused before any connection

        looping = await send_webhook(policy, receiver.url("/loop"), b"{}", {}, deadline_seconds=5)
        assert looping.error == f"more than {MAX_REDIRECTS} redirects"
        assert not looping.refused
        assert len(receiver.at("/loop")) == MAX_REDIRECTS + 1
    finally:
        await other.stop()


async def test_the_connection_goes_to_the_vetted_address_with_the_hostname_kept(
    receiver: Receiver,
) -> None:
    url = receiver.url("/pinned", host="hooks.test")  # hooks.test -> 127.0.0.1 in the table
    outcome = await send_webhook(only_localhost(), url, b"{}", {}, deadline_seconds=5)
    assert outcome.succeeded
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"

    rebound = only_localhost(hooks_test=["10.0.0.5"])  # the name now points inside
    outcome = await send_webhook(rebound, url, b"{}", {}, deadline_seconds=5)
    assert outcome.refused
    assert outcome.error is not None
    assert "10.0.0.5" in outcome.error
    assert len(receiver.requests) == 1


async def test_only_a_kilobyte_of_the_reply_is_kept_and_faults_are_outcomes(
    receiver: Receiver,
) -> None:
    receiver.script("/big", (500, {}, b"\x00" + b"x" * 5000))
    receiver.script("/slow", "hang")
    policy = only_localhost()
    big = await send_webhook(policy, receiver.url("/big"), b"{}", {}, deadline_seconds=5)
    assert (big.status_code, big.error, big.refused) == (500, "HTTP 500", False)
    assert big.response_body is not None
    assert len(big.response_body) == 1024
    assert "\x00" not in big.response_body  # PostgreSQL text cannot hold NUL

    slow = await send_webhook(policy, receiver.url("/slow"), b"{}", {}, deadline_seconds=0.3)
    assert slow.error == "timed out after 0.3 s"
    assert not slow.refused

    receiver_port = receiver.port
    await receiver.stop()
    closed = f"http://127.0.0.1:{receiver_port}/gone"
    refused = await send_webhook(policy, closed, b"{}", {}, deadline_seconds=2)
    assert refused.error is not None
    assert refused.error.startswith("ConnectError")
    await receiver.start()  # the fixture stops it again


# --- TLS: pinned to the IP, verified against the hostname ----------------------------------


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name`: (server context, client context trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[Receiver, ssl.SSLContext, list[str]]]:
    server_context, client_context = _certificate(tmp_path, "hooks.test")
    names: list[str] = []

    def remember_sni(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name or "")

    server_context.sni_callback = remember_sni  # type: ignore[assignment]
    server = await Receiver(tls=server_context).start()
    yield server, client_context, names
    await server.stop()


async def test_https_is_pinned_with_sni_and_certificate_checked_for_the_hostname(
    tls_receiver: tuple[Receiver, ssl.SSLContext, list[str]],
) -> None:
    server, trust, names = tls_receiver
    policy = only_localhost(other_test=["127.0.0.1"])
    url = server.url("/tls", host="hooks.test")
    outcome = await send_webhook(policy, url, b"{}", {}, deadline_seconds=5, tls_context=trust)
    assert outcome.succeeded, outcome
    assert names == ["hooks.test"]  # SNI carries the name, though the socket went to the IP
    assert server.requests[0].headers["host"] == f"hooks.test:{server.port}"

    # Same IP, another name: the certificate is for hooks.test, so verification fails.
    wrong = await send_webhook(
        policy,
        server.url("/tls", host="other.test"),
        b"{}",
        {},
        deadline_seconds=5,
        tls_context=trust,
    )
    assert not wrong.succeeded
    assert not wrong.refused
    assert wrong.error is not None
    assert "certificate" in wrong.error.lower()
    assert len(server.requests) == 1


@pytest.mark.parametrize("url", ["https://2130706433/", "https://0x7f.1/"])
async def test_numeric_host_spellings_are_judged_by_the_address_they_mean(url: str) -> None:
    """The real resolver parses these locally (no DNS query): 127.0.0.1 in disguise."""
    with pytest.raises(TargetRefused, match="loopback"):
        await TargetPolicy().vet(url)
