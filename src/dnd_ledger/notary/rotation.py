"""``dnd-ledger keys rotate``: hand the log over from its signing key to a new one.

The hand-over is a checkpoint of the whole tree, made at once, that names the
new key and is signed by the old key and the new one (see
:mod:`dnd_ledger.notary.keychain`). It is stored beside the other checkpoints
(``dnd_notary_handovers``) and, like them, moves the tree row in the same
transaction, so it also claims that every event stored before it is in it.
From then on the old key signs nothing: a notary still configured with it
writes unsigned checkpoints, which ``verify`` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.notary.keychain import sign_handover
from dnd_ledger.notary.records import CheckpointRecord, format_time
from dnd_ledger.notary.signed_note import SigningKey, fingerprint, format_vkey
from dnd_ledger.storage.persistence import row_values

if TYPE_CHECKING:
    from dnd_ledger.notary.notary import Notary


def rotate(notary: Notary, new_key: SigningKey) -> CheckpointRecord:
    """Sign the hand-over to ``new_key``; the notary signs with the new key from then on."""
    from dnd_ledger.notary.notary import _CONFLICTS

    old = notary.signing_key
    if old is None:
        raise InvalidInput("no signing key is configured: set DND_LEDGER_SIGNING_KEY to the key "
                           "to hand over from")  # fmt: skip
    if notary.retired():
        raise InvalidInput(
            f"the configured key {old.name} ({fingerprint(old.private_key.public_key())}) was "
            "already handed over to another key: configure the newest key"
        )
    new_fp = fingerprint(new_key.private_key.public_key())
    used = {fingerprint(old.private_key.public_key())}
    used |= {r.key_fingerprint for r in notary.handovers() if r.key_fingerprint}
    used |= {str(r[0]) for r in notary.sql.fetchall(
        "SELECT previous_fingerprint FROM dnd_notary_handovers")}  # fmt: skip
    if new_fp in used:
        raise InvalidInput("the new key was already used by this log: make a new one")
    while True:
        notary.catch_up()
        state = notary.state()
        if state.size == 0:
            raise InvalidInput("the ledger is empty: there is nothing to sign a hand-over with")
        now = notary.app.clock()
        body = notary.checkpoint_body(state.size, state.range.root(), now, state.locations)
        note = sign_handover(body, (old.name, old.private_key), (new_key.name, new_key.private_key))
        record = CheckpointRecord(
            state.size, body.root_hash, note, new_key.name, new_fp, now, handover=True
        )
        try:
            with notary.sql.transaction() as c:
                notary._move_tree(c, state, state.range, state.size, None)
                c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM dnd_notary_handovers")
                row = c.fetchone()
                seq = int(row_values(row)[0])
                c.execute(
                    notary.sql.q(
                        "INSERT INTO dnd_notary_handovers (seq, size, root, note, key_name,"
                        " key_fingerprint, previous_key, previous_fingerprint, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (seq, record.size, record.root.hex(), note, new_key.name, new_fp,
                     format_vkey(old.name, old.private_key.public_key()),
                     fingerprint(old.private_key.public_key()), format_time(now)),
                )  # fmt: skip
        except _CONFLICTS:
            continue  # the tree moved meanwhile: hand over at its new size
        notary.signing_key = new_key
        return record


def first_public_key(notary: Notary) -> str | None:
    """The verifier key the configured key's chain starts from, walking hand-overs back.

    Each step is checked again by ``verify`` (both signatures of each hand-over), so
    this only chooses where to start; without a signing key there is no chain.
    """
    if notary.signing_key is None:
        return None
    vkey = format_vkey(notary.signing_key.name, notary.signing_key.private_key.public_key())
    rows = notary.sql.fetchall(
        "SELECT key_fingerprint, previous_key FROM dnd_notary_handovers ORDER BY seq"
    )
    back = {str(r[0]): str(r[1]) for r in rows}
    seen = set()
    while (fp := fingerprint(vkey)) in back and fp not in seen:
        seen.add(fp)
        vkey = back[fp]
    return vkey


__all__ = ["first_public_key", "rotate"]
