"""Egress control for handlers that make outbound HTTP requests.

Workflow specs choose the URLs that ``call_external_service`` and ``call_llm_service`` fetch,
so without a check a spec could reach the cloud metadata endpoint, the database or anything
else on the worker's network. :func:`check_url` refuses any URL that is not http(s) or whose
host resolves to a loopback, private, link-local, unspecified, multicast or reserved address,
unless the host or address is listed in ``settings.TRELLIS_EGRESS_ALLOW``.

Entries of ``TRELLIS_EGRESS_ALLOW`` are hostnames (``llm.internal``; ``*.corp.example`` or
``.corp.example`` for a domain and its subdomains), IP addresses (``127.0.0.1``) or networks
in CIDR form (``10.0.0.0/8``).

The check resolves the name itself, then ``requests`` resolves it again to connect: a DNS
server that answers differently the second time (DNS rebinding) is not caught here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

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
    allow = AllowList.parse(getattr(settings, "TRELLIS_EGRESS_ALLOW", None))
    if allow.allows_host(host):
        return
    for ip in resolve(host, port or (443 if scheme == "https" else 80)):
        if is_internal(ip) and not allow.allows_ip(ip):
            shown = host if str(ip) == host else f"{host} ({ip})"
            raise HandlerError(
                f"{shown} is a private/loopback/link-local address; "
                "add it to TRELLIS_EGRESS_ALLOW to allow it",
                retryable=False,
            )
