"""What the views and the notary need of the event store: a narrow interface.

:class:`~dnd_ledger.storage.eventstore.EventStore` (and so the ledger) provides it.
The projector and the notary are typed on :class:`EventLog`, never on the ledger
class, so the ledger can build them without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from eventsourcing.persistence import InfrastructureFactory, Mapper

    from dnd_ledger.storage.persistence import Sql


class EventLog(Protocol):
    """The stored events, their mapper, and the database beside them."""

    @property
    def sql(self) -> Sql: ...
    @property
    def factory(self) -> InfrastructureFactory[Any]: ...
    @property
    def recorder(self) -> Any:
        """The application recorder (notifications, the events table)."""

    @property
    def events_table(self) -> str: ...
    def qualified(self, table: str) -> str:
        """A table's name as a query names it (with its schema on PostgreSQL)."""

    @property
    def events_by_position(self) -> tuple[str, str]:
        """The events table as a query names it, and its column of notification ids."""

    def stored_id(self, aggregate_id: UUID) -> Any:
        """An aggregate id as the events table's originator id column holds it."""

    def decode_stored(self, originator_id: Any, version: int, topic: str, state: bytes) -> Any:
        """A row of the events table as its domain event."""

    @property
    def mapper(self) -> Mapper[Any]: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
