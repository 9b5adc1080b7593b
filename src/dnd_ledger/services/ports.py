"""What the services need of the ledger: narrow interfaces, not the ledger class.

:class:`~dnd_ledger.application.DndLedger` provides all of them; a test may provide
less. The services import these, never the application, so no import runs in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from eventsourcing.persistence import StoredEvent

    from dnd_ledger.commands import Command, Outcome
    from dnd_ledger.domain.address import Address
    from dnd_ledger.domain.contact import Contact
    from dnd_ledger.domain.policy import Policy
    from dnd_ledger.projections.queries import Freshness, ViewReader
    from dnd_ledger.storage.eventstore import Staged
    from dnd_ledger.storage.persistence import Sql
    from dnd_ledger.storage.pii import Keyring, SqlVault


class Store(Protocol):
    """The aggregates, as a unit of work loads them."""

    def get_aggregate(self, aggregate_id: UUID) -> Contact | Address | None: ...

    def restore_history(self, agg: Contact | Address) -> None: ...

    def events_after(self, agg: Contact) -> list[Contact.Event]: ...


class EventReader(Protocol):
    """An aggregate's stored events (eventsourcing's ``EventStore.get``)."""

    def get(self, originator_id: UUID, *, gt: int | None = ..., lte: int | None = ...,
            desc: bool = ..., limit: int | None = ...) -> Iterable[Any]: ...  # fmt: skip


class Ledger(Store, Protocol):
    """What the command handlers and the queries read of the ledger."""

    @property
    def policy(self) -> Policy: ...
    @property
    def keyring(self) -> Keyring: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def sql(self) -> Sql: ...
    @property
    def vault(self) -> SqlVault: ...
    @property
    def views(self) -> ViewReader: ...
    @property
    def freshness(self) -> Freshness:
        """The views' freshness check (:meth:`ensure_current` runs it)."""

    @property
    def events(self) -> EventReader: ...
    @property
    def write_lock(self) -> AbstractContextManager[Any]:
        """Held by a batch while it loads, mutates and saves (and by reads of aggregates)."""

    def ensure_current(self) -> None:
        """Return once the views show every acknowledged write (else LedgerUnavailable)."""

    def execute(self, command: Command) -> Outcome: ...


class ViewWriter(Protocol):
    """The projector's side of a write: the views, in the write's transaction."""

    def apply_own(self, c: Any, events: Any, aggregates: Any) -> Any: ...

    def committed(self, work: Any) -> None: ...

    def forget(self) -> None: ...


class Writer(Ledger, Protocol):
    """What saving a batch needs: the event store's write side, the vault, the views."""

    @property
    def projector(self) -> ViewWriter: ...
    @property
    def views_lock(self) -> AbstractContextManager[Any]: ...

    def stage(self, aggregates: Iterable[Contact | Address]) -> Staged: ...

    def insert_events(self, c: Any, stored: list[StoredEvent]) -> list[int]: ...

    def write_keys(self, c: Any, staged: Staged) -> None: ...

    def write_resume_points(self, c: Any, staged: Staged) -> None: ...

    def saved(self, staged: Staged) -> None: ...

    def evict(self, aggregate_ids: Iterable[UUID]) -> None: ...
