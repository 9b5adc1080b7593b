"""The same-pipeline CRUD baseline: this product as a plain-table service would do it.

Every command goes through the checks the ledger makes, with the project's own
code: the text check of every field, id and time validation, phonenumbers
parsing, keyed references (:class:`~dnd_ledger.storage.pii.Keyring`) and the vault, the
policy's classification, carrier and email rules and revocation scope, content
idempotency keys (unique per contact or address, and per request id), the
user-clear guard, the address index (a provider signal reaches every contact that
has the address; a contact registering an address gets what was said about it)
and the DND fold (:class:`~dnd_ledger.domain.state.DndState`). What it does not
do is event sourcing: per command it changes one mutable row per contact touched
and adds one audit row; no event objects, no transcoding, no event log, no
projections of it. A batch is one transaction, like ``execute_many``.

An event arriving late applies on the current state (a mutable row has no
history to refold); the ledger refolds. The decisions (which event, which effect)
follow the ledger's command handlers; the rules they apply are the domain's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from dnd_ledger import commands as cmd
from dnd_ledger import textcheck
from dnd_ledger.bench.baselines import RawDb
from dnd_ledger.bench.pipeline_tables import AddressRow, Batch, ContactRow, PipelineTables
from dnd_ledger.domain import inputs, provider_rules
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import IdempotencyKeyReused, InvalidInput, LedgerError, UnknownContact
from dnd_ledger.domain.inputs import (
    MAX_TEXT,
    check_id,
    drop_none,
    optional_text,
    required,
)
from dnd_ledger.domain.keys import CONTENT_MARK, REQUEST_PREFIX
from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.provider_rules import MESSAGE_CHANNELS
from dnd_ledger.domain.rulings import Ignored
from dnd_ledger.domain.state import NO_EFFECT, DndState, Effect, Entry, Op
from dnd_ledger.domain.timecheck import check_occurred_at
from dnd_ledger.domain.values import AddressKind, DndKind, Source
from dnd_ledger.idempotency import email_key, request_key
from dnd_ledger.storage.pii import Keyring, normalise_email, normalise_phone


class _Guard:
    """The ledger's clear guard (:meth:`Contact.check_can_clear`) asks for the state at a
    time; a mutable row has only its current state."""

    def __init__(self, state: DndState) -> None:
        self._state = state

    def state_at(self, as_of: datetime | None = None) -> DndState:
        return self._state


class PipelineCrud:
    def __init__(self, db: RawDb, pii_key: bytes, policy: Policy = DEFAULT_POLICY) -> None:
        self.db = db
        self.tables = PipelineTables(db)
        self.keyring = Keyring(pii_key)
        self.policy = policy
        self.outcomes: Counter[str] = Counter()
        self._b: Batch
        self._now = datetime.now(UTC)

    def apply(self, commands: Sequence[cmd.Command]) -> list[str]:
        """One transaction for the batch; returns each command's result."""
        results: list[str] = []
        self._now = datetime.now(UTC)
        with self.db.transaction() as c:
            self._b = Batch(c, self._now.isoformat())
            for command in commands:
                try:
                    results.append(self._run(command))
                except LedgerError:
                    results.append("rejected")
            written = self.tables.flush(self._b)
        self.tables.vault.known(written)
        self.outcomes.update(results)
        return results

    def _run(self, c: cmd.Command) -> str:
        textcheck.check_command(c)
        pii = len(self._b.pii)
        try:
            if isinstance(c, cmd.RegisterContact):
                return self._register(c)
            if isinstance(c, cmd.SetDnd | cmd.ClearDnd | cmd.ApproveOptIn):
                return self._user(c)
            if isinstance(c, cmd.ReceiveInbound):
                return self._inbound(c)
            if isinstance(c, cmd.ReportCarrierStatus):
                return self._carrier(c)
            if isinstance(c, cmd.ReportEmailEvent):
                return self._email(c)
        except LedgerError:
            del self._b.pii[pii:]
            raise
        raise InvalidInput(f"{type(c).__name__} is not in the bench's CRUD baseline")

    # -- shared steps -----------------------------------------------------------------------
    def _time(self, occurred_at: datetime | None) -> datetime:
        if occurred_at is None:
            return self._now
        return min(check_occurred_at(occurred_at, self._now), self._now)

    def _ref(self, kind: AddressKind | str, value: str) -> str:
        ref = self.keyring.ref(kind, value)
        self._b.pii.append((ref, str(kind), value))
        return ref

    def _has_key(self, owner: str, key: str | None) -> bool:
        """The ledger's key rule on a table: a key held is a duplicate; a request id
        held with other content is refused."""
        if key is None:
            return False
        base = key.rpartition(CONTENT_MARK)[0] or key
        held = self.tables.held_key(self._b, owner, base)
        if held is None:
            return False
        if held == key or not key.startswith(REQUEST_PREFIX):
            return True
        raise IdempotencyKeyReused(
            f"request id {base.removeprefix(REQUEST_PREFIX)!r} was already used for a different"
            f" request on {owner!r}; nothing was recorded: give each request its own id"
        )

    def _keep_key(self, owner: str, key: str | None) -> None:
        if key is not None:
            self._b.keys[(owner, key.rpartition(CONTENT_MARK)[0] or key)] = key

    def _audit(
        self, loc: str, contact_id: str | None, address_ref: str | None, at: datetime, event: str,
        source: Source, actor: str | None, key: str | None, effect: Effect, detail: dict[str, Any],
    ) -> str:  # fmt: skip
        n = self.tables.next_id()
        self._b.audit.append((
            n, loc, contact_id, address_ref, at.isoformat(), self._b.recorded_at, event,
            source.value, actor, key, self.policy.stamp, orjson.dumps(effect.to_dict()).decode(),
            orjson.dumps(detail).decode(),
        ))  # fmt: skip
        return f"audit:{n}"

    def _fold(self, row: ContactRow, at: datetime, event: str, event_id: str, eff: Effect) -> None:
        row.state.apply(Entry(at, self._now, 0, event, event_id, eff))
        self._b.dirty_contacts.add((row.location_id, row.contact_id))

    def _contact(self, loc: str, contact_id: str) -> ContactRow:
        check_id("location_id", loc)
        check_id("contact_id", contact_id)
        row = self.tables.contact(self._b, loc, contact_id)
        if row is None:
            raise UnknownContact.of(loc, contact_id)
        return row

    # -- commands ---------------------------------------------------------------------------
    def _register(self, c: cmd.RegisterContact) -> str:
        check_id("location_id", c.location_id)
        check_id("contact_id", c.contact_id)
        loc, at = c.location_id, self._time(c.occurred_at)
        phones = list(
            dict.fromkeys(self._ref(AddressKind.PHONE, normalise_phone(p)) for p in c.phones)
        )
        emails = list(dict.fromkeys(self._ref(AddressKind.EMAIL, normalise_email(e)) for e in c.emails))  # fmt: skip
        key = request_key(self.keyring, c.request_id, "register", phones=set(phones),
                          emails=set(emails), actor=c.actor, at=c.occurred_at)  # fmt: skip
        owner = f"c:{loc}:{c.contact_id}"
        row = self.tables.contact(self._b, loc, c.contact_id)
        if row is not None and self._has_key(owner, key):
            return "duplicate"
        created = row is None
        if row is None:
            row = ContactRow(loc, c.contact_id, [], [], at.isoformat(), DndState(), new=True)
            self._b.contacts[(loc, c.contact_id)] = row
        new = [(AddressKind.PHONE, p) for p in phones if p not in row.phones]
        new += [(AddressKind.EMAIL, e) for e in emails if e not in row.emails]
        if not new and not created:
            return "duplicate"
        row.phones += [p for k, p in new if k is AddressKind.PHONE]
        row.emails += [e for k, e in new if k is AddressKind.EMAIL]
        self._b.dirty_contacts.add((loc, c.contact_id))
        self._keep_key(owner, key)
        self._audit(loc, c.contact_id, None, at, "Registered" if created else "AddressesAdded",
                    Source.USER, c.actor, key, NO_EFFECT, {"phones": phones, "emails": emails})  # fmt: skip
        for kind, ref in new:
            address = self._address(loc, kind, ref)
            address.claimants.append(c.contact_id)
            # What the address said before this contact had it applies now.
            for audit_id, event, occurred, _, effect in self.tables.held_signals(self._b, loc, ref):
                self._fold(row, datetime.fromisoformat(occurred), event, f"audit:{audit_id}",
                           Effect.from_dict(orjson.loads(effect)))  # fmt: skip
        return "appended"

    def _address(self, loc: str, kind: AddressKind, ref: str) -> AddressRow:
        found = self.tables.address(self._b, loc, ref)
        if found is None:
            found = AddressRow(loc, ref, kind.value, [], new=True)
            self._b.addresses[(loc, ref)] = found
        self._b.dirty_addresses.add((loc, ref))
        return found

    def _user(self, c: cmd.SetDnd | cmd.ClearDnd | cmd.ApproveOptIn) -> str:
        row = self._contact(c.location_id, c.contact_id)
        channels = inputs.channels(c.channels)
        at = self._time(c.occurred_at)
        detail: dict[str, Any]
        if isinstance(c, cmd.ApproveOptIn):
            actor = required("approver", c.approver)
            ticket = required("ticket", c.ticket)
            evidence = required("evidence", c.evidence, MAX_TEXT)
            key = request_key(self.keyring, c.request_id, "approve opt-in", channels=set(channels),
                              approver=actor, ticket=ticket, evidence=evidence, at=c.occurred_at)  # fmt: skip
            event, source = "SupportOptInApproved", Source.SUPPORT
            effect = Effect(Op.CLEAR_ALL, channels, code="support-opt-in",
                            message=f"support-approved opt-in, ticket {ticket}, approved by {actor}")  # fmt: skip
            detail = {"ticket": ticket, "evidence_ref": self._ref("text", evidence)}
        else:
            actor = required("actor", c.actor)
            reason = optional_text("reason", c.reason)
            source = Source.USER
            if isinstance(c, cmd.SetDnd):
                key = request_key(self.keyring, c.request_id, "dnd set", channels=set(channels),
                                  actor=actor, reason=reason, at=c.occurred_at)  # fmt: skip
                event = "DndSetByUser"
                effect = Effect(Op.BLOCK, channels, DndKind.ACTIVE, code="user",
                                message=reason or f"set by {actor} from the contact record")  # fmt: skip
                detail = drop_none(reason=reason)
            else:
                key = request_key(self.keyring, c.request_id, "dnd clear", channels=set(channels),
                                  actor=actor, reason=reason, suppression_removed=c.suppression_removed,
                                  at=c.occurred_at)  # fmt: skip
                event = "DndClearedByUser"
                effect = Effect(Op.CLEAR_TEMPORARY, channels, code="user",
                                message=reason or f"cleared by {actor} from the contact record",
                                attested=c.suppression_removed)  # fmt: skip
                detail = drop_none(reason=reason, suppression_removed=c.suppression_removed or None)  # fmt: skip
        owner = f"c:{c.location_id}:{c.contact_id}"
        if self._has_key(owner, key):
            return "duplicate"
        if isinstance(c, cmd.ClearDnd):
            guard = cast(Contact, _Guard(row.state))
            Contact.check_can_clear(guard, channels, at, c.suppression_removed)
        self._keep_key(owner, key)
        audit_id = self._audit(c.location_id, c.contact_id, None, at, event, source, actor, key,
                               effect, detail)  # fmt: skip
        self._fold(row, at, event, audit_id, effect)
        return "appended"

    def _inbound(self, c: cmd.ReceiveInbound) -> str:
        check_id("location_id", c.location_id)
        if c.channel not in MESSAGE_CHANNELS:
            raise InvalidInput(f"inbound messages arrive on sms or whatsapp, not {c.channel}")
        message_id = required("message_id", c.message_id)
        if len(c.body) > MAX_TEXT:
            raise InvalidInput(f"message body is longer than {MAX_TEXT} characters")
        ref = self._ref(AddressKind.PHONE, normalise_phone(c.from_address))
        at = self._time(c.occurred_at)
        body = textcheck.clean_body(c.body)
        theirs = textcheck.clean_body(c.provider_opt_out_type or "").strip().upper() or None
        received = self.keyring.ref("text", textcheck.exact(c.body)) if body != c.body else None
        ruling = provider_rules.inbound(
            self.policy,
            c.channel,
            body,
            theirs,
            at,
            ref=ref,
            body_ref=self._ref("text", body),
            received_ref=received,
            message_id=message_id,
        )
        if isinstance(ruling, Ignored):
            return "ignored"
        return self._signal(c.location_id, AddressKind.PHONE, ref, ruling.event, at,
                            f"inbound:{message_id}", ruling.effect, ruling.detail)  # fmt: skip

    def _carrier(self, c: cmd.ReportCarrierStatus) -> str:
        check_id("location_id", c.location_id)
        message_id = required("message_id", c.message_id)
        if c.error_code is None or provider_rules.carrier_ignored(self.policy, c.error_code):
            return "ignored"
        ref = self._ref(AddressKind.PHONE, normalise_phone(c.to_address))
        at = self._time(c.occurred_at)
        ruling = provider_rules.carrier(self.policy, c.error_code, c.status, c.channel, at,
                                        ref=ref, message_id=message_id)  # fmt: skip
        key = f"status:{message_id}:{c.status}:{c.error_code}"
        return self._signal(c.location_id, AddressKind.PHONE, ref, ruling.event, at, key,
                            ruling.effect, ruling.detail)  # fmt: skip

    def _email(self, c: cmd.ReportEmailEvent) -> str:
        check_id("location_id", c.location_id)
        token = required("idempotency_key", c.idempotency_key)
        if provider_rules.email_ignored(self.policy, c.signal, c.reason):
            return "ignored"
        ref = self._ref(AddressKind.EMAIL, normalise_email(c.recipient))
        at = self._time(c.occurred_at)
        ruling = provider_rules.email(self.policy, c.signal, c.reason, ref=ref,
                                      event_id=c.event_id)  # fmt: skip
        key = email_key(token, normalise_email(c.recipient), ref, c.key_per_recipient)
        return self._signal(c.location_id, AddressKind.EMAIL, ref, ruling.event, at, key,
                            ruling.effect, ruling.detail)  # fmt: skip

    def _signal(
        self, loc: str, kind: AddressKind, ref: str, event: str, at: datetime, key: str,
        effect: Effect, detail: dict[str, Any],
    ) -> str:  # fmt: skip
        """A provider signal on its address, then on every contact that has the address."""
        owner = f"a:{loc}:{ref}"
        address = self.tables.address(self._b, loc, ref)
        if address is not None and self._has_key(owner, key):
            return "duplicate"
        if address is None:
            address = self._address(loc, kind, ref)
        self._keep_key(owner, key)
        claimants = list(address.claimants)
        audit_id = self._audit(loc, None, ref, at, event, Source.PROVIDER, None, key, effect,
                               {**detail, "contacts": claimants})  # fmt: skip
        for contact_id in claimants:
            row = self.tables.contact(self._b, loc, contact_id)
            if row is not None:
                self._fold(row, at, event, audit_id, effect)
        return "appended"


__all__ = ["PipelineCrud"]
