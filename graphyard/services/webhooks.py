"""Webhook URL policy (langgraph.json `webhooks.url`), checked when a run is created."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from graphyard.errors import Unprocessable


def _host_ips(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    return []


def validate_webhook(url: str, policy: dict[str, Any] | None) -> None:
    """Refuse URLs the project's policy does not allow: 422 with what to fix.

    Without a `url` block: any scheme, but no loopback. With one, `require_https` defaults to true."""
    rules = (policy or {}).get("url")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise Unprocessable(f"Invalid webhook hostname '{host}'")
    if rules is None:
        rules = {"require_https": False, "disable_loopback": True}
    max_length = int(rules.get("max_url_length", 4096))
    if len(url) > max_length:
        raise Unprocessable(f"Webhook URL exceeds {max_length} characters")
    if rules.get("require_https", True) and parts.scheme != "https":
        raise Unprocessable("Webhook must use https")
    allowed_domains = rules.get("allowed_domains")
    if allowed_domains and not any(host == d or (d.startswith("*.") and host.endswith(d[1:])) for d in allowed_domains):
        raise Unprocessable(f"Webhook host '{host}' is not in the allowed domains")
    allowed_ports = rules.get("allowed_ports")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allowed_ports and port not in allowed_ports:
        raise Unprocessable(f"Webhook port {port} is not allowed")
    for ip in _host_ips(host):
        if ip.is_loopback and rules.get("disable_loopback", True):
            kind = "localhost address" if host == "localhost" else "loopback IP range"
            raise Unprocessable(f"Webhook host blocked: {kind}")
        if ip.is_private and not ip.is_loopback and rules.get("disable_private_ips", False):
            raise Unprocessable("Webhook host blocked: private IP range")


__all__ = ["validate_webhook"]
