"""CLI commands for tamper evidence: keys, checkpoints, verify, proofs, auditor bundles."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from dnd_ledger.cli.common import Ctx, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli.output import emit_json, table
from dnd_ledger.cli.witness import witness_key_option, witness_keys_of
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.text import NotText, decode_text
from dnd_ledger.notary.notary import CheckpointRecord, format_time
from dnd_ledger.notary.offline import BundleError, load_public_key
from dnd_ledger.notary.rotation import first_public_key
from dnd_ledger.notary.signed_note import VerifierKey, parse_vkey
from dnd_ledger.notary.verify import Report, verify_ledger
from dnd_ledger.notary.witness_client import collect_cosignatures

# -- checkpoints and the notary ---------------------------------------------------------------


@click.command()
@click.option("--witness", "witnesses", multiple=True, metavar="URL",
              help="A C2SP tlog witness to cosign the checkpoint (repeatable).")  # fmt: skip
@witness_key_option
@json_option
@pass_ctx
@ledger_errors
def checkpoint(
    c: Ctx, witnesses: tuple[str, ...], witness_keys: tuple[str, ...], as_json: bool
) -> None:
    """Notarise every event now and checkpoint the tree (signed when a key is configured).

    With --witness, each witness checks the checkpoint against what it cosigned
    before and cosigns it; the cosignatures are kept in the checkpoint's note.

    Example: dnd-ledger checkpoint --witness http://witness.example:7380 --json
    """
    keys = witness_keys_of(witness_keys)
    record = c.ledger.notary.checkpoint()
    if record is None:
        raise InvalidInput("the ledger is empty: there is nothing to checkpoint")
    if witnesses:
        record = collect_cosignatures(c.ledger.notary, record, witnesses, keys)
    if as_json:
        emit_json(record.to_json())
        return
    click.echo(_checkpoint_line(record))
    click.echo(record.note, nl=False)


def _checkpoint_line(r: CheckpointRecord) -> str:
    how = f"signed by {r.key_name} ({r.key_fingerprint})" if r.signed else "UNSIGNED (no key)"
    return f"checkpoint at size {r.size}, made {format_time(r.created_at)}, {how}"


@click.group()
def notary() -> None:
    """The notary: the Merkle tree over the event log, and its checkpoints."""


@notary.command("status")
@json_option
@pass_ctx
@ledger_errors
def notary_status(c: Ctx, as_json: bool) -> None:
    """Where the notary is in the log, and its latest checkpoint.

    Example: dnd-ledger notary status --json
    """
    n = c.ledger.notary
    state, head, latest = n.state(), n.head(), n.latest_checkpoint()
    data = {
        "origin": n.origin,
        "position": n.position(),
        "head": head,
        "tree_size": state.size,
        "lag": head - n.position(),
        "signing_key": n.public_key,
        "checkpoint_every": n.every,
        "checkpoint_interval": n.interval,
        "latest_checkpoint": latest.to_json() if latest else None,
    }
    if as_json:
        emit_json(data)
        return
    rows = [(k, v) for k, v in data.items() if k != "latest_checkpoint"]
    rows.append(("latest checkpoint", _checkpoint_line(latest) if latest else "none yet"))
    click.echo(table(["", ""], rows))


@notary.command("run")
@click.option("--follow", is_flag=True, help="Keep running, polling for new events.")
@click.option("--interval", type=float, default=0.5, show_default=True, help="Poll interval (s).")
@pass_ctx
@ledger_errors
def notary_run(c: Ctx, follow: bool, interval: float) -> None:
    """Notarise new events (with --follow, keep doing it; time-based checkpoints included).

    Example: dnd-ledger notary run --follow
    """
    n = c.ledger.notary
    click.echo(f"notarised {n.catch_up()} events")
    while follow:
        time.sleep(interval)
        done = n.catch_up()
        if done:
            click.echo(f"notarised {done} events")


# -- verify -----------------------------------------------------------------------------------


def _public_key(c: Ctx, given: str | None) -> VerifierKey | None:
    if given:
        try:
            return load_public_key(given)
        except BundleError as e:
            raise click.BadParameter(str(e), param_hint="--public-key") from e
    key = first_public_key(c.ledger.notary)  # the configured key's chain, from its start
    return parse_vkey(key) if key else None


@click.command()
@click.option("--public-key", "public_key", help="Verifier key, or a file holding it "
              "[default: the configured signing key's].")  # fmt: skip
@click.option("--known-checkpoint", "known", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A signed checkpoint kept elsewhere (a note, or a bundle): the ledger must "
              "still contain it. Repeatable.")  # fmt: skip
@click.option("--require-witnesses", type=click.IntRange(min=0), default=0, metavar="N",
              help="Fail unless the latest signed checkpoint carries N cosignatures of the "
              "--witness-key witnesses.")  # fmt: skip
@witness_key_option
@json_option
@pass_ctx
@ledger_errors
def verify(
    c: Ctx,
    public_key: str | None,
    known: tuple[str, ...],
    require_witnesses: int,
    witness_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Recompute the notary's tree from the stored events and check every checkpoint.

    Names the first problem: which event (position, aggregate, version), what
    differs, which checkpoint no longer holds. Exit status: 0 all holds; 1 a
    problem was found; 3 nothing is wrong but nothing is signed (or no public
    key to check signatures with).

    Example: dnd-ledger verify --known-checkpoint last-month.bundle.json
    """
    notes = [_known_note(Path(f)) for f in known]
    keys = witness_keys_of(witness_keys)
    if require_witnesses > len(keys):
        raise click.BadParameter(f"{require_witnesses} witnesses are required, but only "
                                 f"{len(keys)} --witness-key given", param_hint="--require-witnesses")  # fmt: skip
    result = verify_ledger(c.ledger, _public_key(c, public_key), known=notes, witnesses=keys,
                           require_witnesses=require_witnesses)  # fmt: skip
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(_verify_text(result))
    sys.exit(result.exit_code)


def _known_note(path: Path) -> str:
    try:
        text = decode_text(path.read_bytes(), str(path))
    except NotText as e:
        raise click.BadParameter(str(e), param_hint="--known-checkpoint") from None
    if text.lstrip().startswith("{"):
        try:
            return str(json.loads(text)["checkpoint"])
        except (ValueError, KeyError, TypeError):
            raise click.BadParameter(
                f"{path} is neither a checkpoint note nor a bundle", param_hint="--known-checkpoint"
            ) from None
    return text


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _verify_text(r: Report) -> str:
    lines = []
    if r.status == "problem":
        lines.append(f"verify: FAILED, {_n(r.problem_count, 'problem')}")
        lines.append(f"first problem: {r.problems[0].message}")
        for p in r.problems[1:10]:
            lines.append(f"  also: {p.message}")
        if r.problem_count > 10:
            lines.append(f"  ... and {r.problem_count - 10} more (--json lists up to 1000)")
    elif r.status == "unsigned":
        lines.append(
            "verify: NOT SIGNED: the log matches its tree, but no signature vouches for it"
        )
    else:
        lines.append("verify: OK")
    key = f"key {r.key['name']} ({r.key['fingerprint']})" if r.key else "no public key"
    lines.append(
        f"checked {_n(r.events, 'event')}: {r.tree_size} notarised, {r.pending} pending; "
        f"{_n(r.checkpoints, 'checkpoint')} ({r.signed_checkpoints} signed), {key}"
    )
    if r.verified_size:
        lines.append(f"the first {r.verified_size} events are under a verified signature")
    if len(r.keys) > 1:
        lines.append(f"signing keys: {_n(len(r.keys), 'key')} followed from the first through "
                     f"{_n(len(r.keys) - 1, 'hand-over')}")  # fmt: skip
    if r.witnessed_size:
        lines.append(f"the first {r.witnessed_size} events are under witness cosignatures")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
