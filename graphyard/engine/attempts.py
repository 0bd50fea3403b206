"""An attempt of a run executing in this process, and how long it may trust its lease."""

from __future__ import annotations

from dataclasses import dataclass

from graphyard.records import Lease

# An attempt stops itself when this share of its lease has passed since the last renewal it saw
# succeed: the margin covers clock drift between machines and the time a renewal takes to commit,
# so a worker cut off from the database stops executing before anyone else may take the run over.
SAFE_SHARE = 0.75


@dataclass
class Attempt:
    """One attempt of a run executing in this process, as the lease keeper sees it."""

    lease: Lease
    claimed_at: float  # monotonic time the claim committed (a renewal sent before it cannot know the run)
    valid_until: float  # monotonic time after which we can no longer be sure we hold the lease
    settled: bool = False  # its outcome is committed (or it was handed back): nothing left to stop
    lost: bool = False  # it was stopped because the lease was (or may have been) lost

    @classmethod
    def claimed(cls, lease: Lease, sent_at: float, committed_at: float, lease_seconds: float) -> Attempt:
        """An attempt whose claim was sent at sent_at (its lease counts from then) and committed at committed_at."""
        return cls(lease, committed_at, sent_at + lease_seconds * SAFE_SHARE)
