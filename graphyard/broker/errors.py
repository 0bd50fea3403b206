"""Broker-level errors: what adapters turn driver errors into."""

from __future__ import annotations


class BrokerUnavailable(Exception):
    """The broker (Redis) cannot be reached."""
