"""``dnd-ledger proof inclusion|consistency``: Merkle proofs against the checkpoints."""

from __future__ import annotations

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.cli.output import emit_json
from dnd_ledger.domain.errors import InvalidInput

# -- proofs -----------------------------------------------------------------------------------


@click.group()
def proof() -> None:
    """Merkle proofs (RFC 6962) against the notary's checkpoints, as JSON."""


@proof.command("inclusion")
@click.argument("position", type=click.IntRange(min=0))
@click.option("--leaf-index", is_flag=True, help="POSITION is a leaf index, not a log position.")
@click.option("--size", type=click.IntRange(min=1),
              help="Tree size to prove against [default: the latest checkpoint].")  # fmt: skip
@pass_ctx
@ledger_errors
def proof_inclusion(c: Ctx, position: int, leaf_index: bool, size: int | None) -> None:
    """Prove that the event at a log POSITION (as `audit` shows it) is in the tree.

    Example: dnd-ledger proof inclusion 7
    """
    n = c.ledger.notary
    target = _tree_size(c, size)
    if leaf_index:
        index = position
    else:
        row = c.ledger.sql.fetchone(
            "SELECT leaf_index FROM dnd_notary_leaves WHERE notification_id = ?", (position,)
        )
        if row is None:
            raise InvalidInput(f"no event at position {position} is notarised")
        index = int(row[0])
    if index >= target:
        raise InvalidInput(
            f"leaf {index} is not under the tree of size {target}: run `dnd-ledger checkpoint`"
        )
    levels = n.levels(target)
    leaf = next(leaf for i, leaf in n.leaves(stop=index + 1) if i == index)
    emit_json(
        {
            "type": "inclusion",
            "leaf_index": index,
            "position": leaf.notification_id,
            "leaf": leaf.to_json(),
            "leaf_data": leaf.encode().decode("ascii"),
            "leaf_hash": levels.leaf(index).hex(),
            "tree_size": target,
            "root": levels.root().hex(),
            "checkpoint": _note(c, target),
            "proof": [h.hex() for h in levels.inclusion_proof(index, target)],
        }
    )


@proof.command("consistency")
@click.argument("old_size", type=click.IntRange(min=1))
@click.argument("new_size", type=click.IntRange(min=1))
@pass_ctx
@ledger_errors
def proof_consistency(c: Ctx, old_size: int, new_size: int) -> None:
    """Prove that the tree of NEW_SIZE leaves extends the tree of OLD_SIZE.

    Example: dnd-ledger proof consistency 1000 2000
    """
    if old_size > new_size:
        raise InvalidInput(f"old size {old_size} is larger than new size {new_size}")
    target = _tree_size(c, new_size)
    levels = c.ledger.notary.levels(target)
    emit_json(
        {
            "type": "consistency",
            "old_size": old_size,
            "new_size": new_size,
            "old_root": levels.root(old_size).hex(),
            "new_root": levels.root(new_size).hex(),
            "old_checkpoint": _note(c, old_size),
            "new_checkpoint": _note(c, new_size),
            "proof": [h.hex() for h in levels.consistency_proof(old_size, new_size)],
        }
    )


def _tree_size(c: Ctx, size: int | None) -> int:
    n = c.ledger.notary
    if size is None:
        latest = n.latest_checkpoint()
        if latest is None:
            raise InvalidInput("no checkpoint yet: run `dnd-ledger checkpoint`")
        return latest.size
    have = n.state().size
    if size > have:
        raise InvalidInput(f"the tree has {have} leaves, fewer than {size}")
    return size


def _note(c: Ctx, size: int) -> str | None:
    row = c.ledger.sql.fetchone("SELECT note FROM dnd_notary_checkpoints WHERE size = ?", (size,))
    return None if row is None else str(row[0])
