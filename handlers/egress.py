"""Egress control for handlers that make outbound HTTP requests.

Workflow specs choose the URLs that ``call_external_service`` and ``call_llm_service`` fetch,
so without a check a spec could reach the cloud metadata endpoint, the database or anything
else on the worker's network. :func:`check_url` refuses any URL that is not http(s) or whose
host resolves to a loopback, private, link-local, unspecified, multicast or reserved address,
unless the host or address is listed in ``settings.TRELLIS_EGRESS_ALLOW``.

Entries of ``TRELLIS_EGRESS_ALLOW`` are hostnames (``llm.internal``; ``*.corp.example`` or
``.corp.example`` for a domain and its subdomains), IP addresses (``127.0.0.1``) or networks
in CIDR form (``10.0.0.0/8``).

:func:`check_url` runs before each request and each redirect, for a clear early error. The
connection itself is made by :class:`GuardedAdapter`, which resolves the host once more,
checks every address it got and connects to those very addresses: a DNS server that answers
differently the second time (DNS rebinding) gets the same refusal, never a connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from .registry import HandlerError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class AllowList:
    """``TRELLIS_EGRESS_ALLOW`` parsed into hostnames, domain suffixes and networks."""

    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".example.com": the domain and every subdomain
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, entries: Iterable[str] | str | None) -> AllowList:
        if entries is None:
            return cls()
        if isinstance(entries, str):
            entries = entries.split(",")
        hosts: set[str] = set()
        domains: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = str(raw).strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                domains.append(entry[1:])
            elif entry.startswith("."):
                domains.append(entry)
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(domains), tuple(networks))

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.hosts:
            return True
        if any(host.endswith(domain) or host == domain[1:] for domain in self.domains):
            return True
        ip = _as_ip(host)
        return ip is not None and self.allows_ip(ip)

    def allows_ip(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            c.version == net.version and c in net for c in candidates for net in self.networks
        )


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_internal(ip: IPAddress) -> bool:
    """True for addresses a workflow must not reach unless explicitly allowed."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_internal(ip.ipv4_mapped)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global  # shared address space (100.64/10) and the like
    )


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (raises ``HandlerError`` when it does not)."""
    literal = _as_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        transient = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", None))
        raise HandlerError(f"cannot resolve host {host!r}: {exc}", retryable=transient) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = _as_ip(str(sockaddr[0]))
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise HandlerError(f"cannot resolve host {host!r}: no addresses", retryable=False)
    return addresses


def _refusal(host: str, ip: IPAddress) -> HandlerError:
    shown = host if str(ip) == host else f"{host} ({ip})"
    return HandlerError(
        f"{shown} is a private/loopback/link-local address; "
        "add it to TRELLIS_EGRESS_ALLOW to allow it",
        retryable=False,
    )


def allowed_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` a workflow may connect to; raises ``HandlerError`` when any
    of them is internal and not allowed (a name that mixes public and private answers is
    refused as a whole)."""
    allow = AllowList.parse(getattr(settings, "TRELLIS_EGRESS_ALLOW", None))
    addresses = resolve(host, port)
    if allow.allows_host(host):
        return addresses
    for ip in addresses:
        if is_internal(ip) and not allow.allows_ip(ip):
            raise _refusal(host, ip)
    return addresses


def _numeric_ipv4(host: str) -> IPAddress | None:
    """``2130706433``, ``0x7f.1``, ``127.1``: forms the C resolver reads as IPv4 addresses."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def static_refusal(url: Any) -> str | None:
    """Why a literal URL in a spec can never pass the egress policy, or None.

    Spec validation uses this to refuse ``http://169.254.169.254/``, ``http://localhost/``,
    ``http://[::1]/``, ``http://2130706433/`` and the like before anything is stored. Names
    are not resolved here (the worker's DNS may differ); templates are judged when rendered.
    """
    if not isinstance(url, str) or "{{" in url or "{%" in url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"invalid URL: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        return f"URL scheme {scheme or '(none)'!r} is not allowed: only http and https"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "URL has no host"
    allow = AllowList.parse(getattr(settings, "TRELLIS_EGRESS_ALLOW", None))
    if allow.allows_host(host):
        return None
    ip = _as_ip(host) or _numeric_ipv4(host)
    local_name = host == "localhost" or host.endswith(".localhost")
    if (ip is not None and is_internal(ip) and not allow.allows_ip(ip)) or local_name:
        return str(_refusal(host, ip or ipaddress.ip_address("127.0.0.1")))
    return None


def check_url(url: str) -> None:
    """Raise a non-retryable ``HandlerError`` unless ``url`` may be fetched by a workflow."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HandlerError(f"invalid URL {url!r}: {exc}", retryable=False) from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise HandlerError(
            f"URL {url!r} has scheme {scheme or '(none)'!r}: only http and https are allowed",
            retryable=False,
        )
    host = parts.hostname
    if not host:
        raise HandlerError(f"URL {url!r} has no host", retryable=False)
    if AllowList.parse(getattr(settings, "TRELLIS_EGRESS_ALLOW", None)).allows_host(host):
        return  # allowed by name: resolved only when connecting
    allowed_addresses(host, port or (443 if scheme == "https" else 80))


# --------------------------------------------------------------------------- connections


class _GuardedConnection:
    """Connects only to addresses :func:`allowed_addresses` approved in this very call, so
    that the check and the connection see the same DNS answer. TLS still verifies the
    certificate against the host name (``self.host`` is unchanged)."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        last: OSError | None = None
        for ip in allowed_addresses(self.host, self.port):
            try:
                return urllib3_connection.create_connection(
                    (str(ip), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` transport whose every connection passes the egress policy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }
