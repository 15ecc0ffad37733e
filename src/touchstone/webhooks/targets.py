"""Where webhooks may go: the SSRF policy, applied at registration and before every hop.

A target is vetted in three steps: the URL (https, or http when configured; a host; no
userinfo), the DNS answer (every address must be allowed, not just the first), and then
the sender connects to one of exactly those vetted addresses, so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect the request. Redirects are
followed by the sender, which vets each new location the same way.

The resolver and the policy are plain values, so tests can say "this name resolves to
10.0.0.5" or "only 127.0.0.1 is allowed" without any traffic leaving the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from touchstone.core.config import Settings
from touchstone.webhooks.exceptions import TargetRefused, TargetUnresolvable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses`; raises `OSError` (e.g. `socket.gaierror`) when it cannot."""

DEFAULT_PORTS = {"https": 443, "http": 80}
RESOLVE_TIMEOUT_SECONDS = 5.0
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    """The event loop's getaddrinfo (threaded, so the loop never blocks on DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address can lead to (mapped, 6to4, Teredo, NAT64, compatible)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(address)))
    return found


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(address):
            if (reason := address_problem(inner)) is not None:
                return f"{reason} (embedded {inner})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (
            isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE,
            "shared address space (100.64.0.0/10)",
        ),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for failed, reason in checks if failed), None)


@dataclass(frozen=True)
class Target:
    """A URL whose host has been resolved and whose every address passed the policy."""

    url: httpx.URL
    host: str
    """The hostname (IDNA-encoded) or the IP literal, as sent in Host and TLS SNI."""
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def is_ip_literal(self) -> bool:
        return _ip_literal(self.host) is not None


def _valid_hostname(host: str) -> bool:
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class TargetPolicy:
    allow_http: bool = False
    allow_private: bool = False
    """Any address at all (development, or receivers on a private network)."""
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Exceptions to the public-only rule, e.g. an internal receiver's /32."""
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        return cls(
            allow_http=settings.webhook_targets_http,
            allow_private=settings.webhook_targets_private,
        )

    def parse(self, raw: str | httpx.URL) -> httpx.URL:
        """Check the URL itself (no DNS): scheme, host, no credentials."""
        try:
            url = raw if isinstance(raw, httpx.URL) else httpx.URL(raw)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise TargetRefused(f"Not a valid URL: {exc}") from exc
        allowed = ("https", "http") if self.allow_http else ("https",)
        if url.scheme not in allowed:
            raise TargetRefused(f"The URL must use {' or '.join(allowed)}")
        if url.userinfo:
            raise TargetRefused("The URL must not contain a user name or password")
        host = url.raw_host.decode("ascii", "replace").lower()
        if not host:
            raise TargetRefused("The URL must name a host")
        if _ip_literal(host) is None and not _valid_hostname(host):
            raise TargetRefused("The URL's host is not a valid host name")
        return url

    def check_address(self, address: IPAddress) -> None:
        if self.allow_private or any(address in network for network in self.allowed_networks):
            return
        if (reason := address_problem(address)) is not None:
            raise TargetRefused(f"{address} is not allowed: {reason} address")

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if (literal := _ip_literal(host)) is not None:
            return [literal]
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                answers = await self.resolver(host, port)
        except (OSError, TimeoutError) as exc:
            raise TargetUnresolvable(f"{host} does not resolve") from exc
        addresses: list[IPAddress] = []
        for answer in answers:
            literal = _ip_literal(answer.split("%", 1)[0])  # drop an IPv6 zone id
            if literal is None:
                raise TargetUnresolvable(f"{host} resolved to something that is not an address")
            addresses.append(literal)
        if not addresses:
            raise TargetUnresolvable(f"{host} does not resolve")
        return addresses

    async def vet(self, raw: str | httpx.URL) -> Target:
        """Parse, resolve and check every address; raise `TargetRefused`/`TargetUnresolvable`."""
        url = self.parse(raw)
        host = url.raw_host.decode("ascii").lower()
        port = url.port or DEFAULT_PORTS[url.scheme]
        addresses = await self.resolve(host, port)
        for address in addresses:
            self.check_address(address)
        return Target(url=url, host=host, port=port, addresses=tuple(addresses))
