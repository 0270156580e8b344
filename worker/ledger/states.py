"""The states a version moves through (DOMAIN.md §12; issue: discovered → built → signed → submitted → …)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    DISCOVERED = "discovered"  # the HIS shows a (possibly changed) completed encounter; not built yet
    BUILT = "built"  # payload built and validated; content hash known
    SIGNED = "signed"  # signed bytes stored as evidence; ready to submit
    SUBMITTED = "submitted"  # at least one attempt made; waiting for a retry
    ACCEPTED = "accepted"  # the gateway received it (maKetQua 200 or "already received")
    REJECTED = "rejected"  # the gateway refused the data: needs a fix in the HIS
    QUARANTINED = "quarantined"  # failed our validation: needs a fix in the HIS
    DEAD = "dead"  # transient failures exhausted the retries; an operator must replay it
    UNCHANGED = "unchanged"  # rebuilt to the same content as an existing version: nothing to send
    SUPERSEDED = "superseded"  # a newer version of the encounter replaced it before it was accepted
    HIDDEN = "hidden"  # the HIS no longer shows the encounter as completed (encounter-level only)


#: States in which the pipeline still has work to do on a version.
ACTIVE = frozenset({State.DISCOVERED, State.BUILT, State.SIGNED, State.SUBMITTED})
#: States that need a person (fix the data, replay) — coverage lists them with their reason.
NEEDS_ATTENTION = frozenset({State.REJECTED, State.QUARANTINED, State.DEAD, State.HIDDEN})
