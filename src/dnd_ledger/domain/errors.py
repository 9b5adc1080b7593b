"""Domain errors: a refused command appends nothing and says why."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every refusal the ledger reports to its callers."""


class InvalidInput(LedgerError):
    """The command is malformed (bad channel, address, time, empty field...)."""


class UnknownContact(LedgerError):
    """The contact was never registered (a typo must not read as 'no DND')."""

    @classmethod
    def of(cls, location_id: str, contact_id: str) -> UnknownContact:
        return cls(f"contact {contact_id!r} is not registered in location {location_id!r}")


class PermanentDnd(LedgerError):
    """A permanent DND cannot be cleared from the contact record."""


class AttestationRequired(LedgerError):
    """Clearing a bounce/suppression email DND needs the suppression-removed attestation."""


class IdempotencyKeyReused(LedgerError):
    """A request id (or idempotency key) already recorded came back with other content."""


class Conflict(LedgerError):
    """Concurrent writers kept colliding; the command was not recorded."""


class LedgerUnavailable(LedgerError):
    """The views cannot be shown to be current: no decision is made (fail closed).

    ``lag`` is how many stored events the views are known to be behind (None when
    even that could not be read).
    """

    def __init__(self, message: str, *, lag: int | None = None) -> None:
        super().__init__(message)
        self.lag = lag


class AlreadyConfirmed(LedgerError):
    """The one confirmation text for an opt-out was already recorded."""


class AlreadyResolved(LedgerError):
    """The review item already has a verdict."""


class UnknownReviewItem(LedgerError):
    """No suspected revocation with that item id in that location."""


class HistoryNotLoaded(RuntimeError):
    """A compacted contact was asked to refold its past (the caller restores it first)."""
