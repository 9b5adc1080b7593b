"""One handler per command, and the batch that runs them in one unit of work.

A batch runs every command against one :class:`Unit`, then saves it in one
transaction. A refused command leaves no trace; optimistic-concurrency conflicts
with another writer are retried from freshly loaded state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from dnd_ledger import commands as cmd
from dnd_ledger import textcheck
from dnd_ledger.commands import Command, Outcome
from dnd_ledger.domain.errors import Conflict, InvalidInput, LedgerError
from dnd_ledger.services import (
    consent_rules,
    contact_admin,
    legacy,
    provider_signals,
    registration,
    reviews,
    support,
    user_dnd,
)
from dnd_ledger.services.ports import Ledger, Writer
from dnd_ledger.services.unit_of_work import Unit, save

MAX_ATTEMPTS = 20

HANDLERS: dict[type[Any], Callable[[Ledger, Unit, Any], Outcome]] = {
    cmd.RegisterContact: registration.register,
    cmd.SetDnd: user_dnd.set_dnd,
    cmd.ClearDnd: user_dnd.clear_dnd,
    cmd.ApproveOptIn: support.approve_opt_in,
    cmd.ReceiveInbound: provider_signals.receive_inbound,
    cmd.ReportCarrierStatus: provider_signals.report_carrier_status,
    cmd.ReportEmailEvent: provider_signals.report_email_event,
    cmd.ImportLegacy: legacy.import_legacy,
    cmd.RemoveAddress: contact_admin.remove_address,
    cmd.RecordErasure: contact_admin.record_erasure,
    cmd.RecordConfirmation: consent_rules.record_confirmation,
    cmd.ResolveReview: reviews.resolve_review,
    cmd.LocateContact: consent_rules.locate_contact,
}


def execute_many(
    ledger: Writer, commands: Sequence[Command], *, raise_errors: bool = False
) -> list[Outcome]:
    """Record many commands in one transaction (see ``DndLedger.execute_many``)."""
    for attempt in range(MAX_ATTEMPTS):
        with ledger.write_lock:
            unit = Unit(ledger, ledger.keyring, now=ledger.clock())
            outcomes: list[Outcome] = []
            try:
                for c in commands:
                    try:
                        outcomes.append(run(ledger, unit, c))
                    except LedgerError as e:
                        if raise_errors:
                            raise
                        outcomes.append(Outcome("rejected", detail={"error": str(e)}))
                save(ledger, unit)
            except IntegrityError:
                ledger.evict([*unit.contacts, *unit.addresses])
            except BaseException:
                ledger.evict([*unit.contacts, *unit.addresses])
                raise
            else:
                return outcomes
        # Another writer saved the same aggregates first. Back off for a random
        # while (doubling), so two writers of one hot stream stop colliding in step.
        time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
    raise Conflict(f"gave up after {MAX_ATTEMPTS} attempts: concurrent writers kept colliding")


def run(ledger: Ledger, unit: Unit, c: Command) -> Outcome:
    """One command against the unit; a refusal raises and leaves no trace in it."""
    handler = HANDLERS.get(type(c))
    if handler is None:
        raise InvalidInput(f"unknown command {type(c).__name__}")
    # Its guards run before it triggers any event, and what it created for itself
    # is dropped.
    textcheck.check_command(c)  # nothing unchecked reaches the database
    mark = unit.mark()
    try:
        return handler(ledger, unit, c)
    except LedgerError:
        unit.drop_since(mark)
        raise
