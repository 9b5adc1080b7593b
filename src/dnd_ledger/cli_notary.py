"""CLI commands for tamper evidence: keys, checkpoints, verify, proofs, auditor bundles."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from dnd_ledger.cli import TIME, Ctx, audit, cli, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli_output import emit_json, table
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.text import NotText, decode_text
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.notary import CheckpointRecord, format_time
from dnd_ledger.notary.offline import (
    BundleError,
    load_public_key,
    report,
    report_text,
    verify_bundle,
)
from dnd_ledger.notary.signed_note import (
    NoteError,
    VerifierKey,
    fingerprint,
    format_vkey,
    generate_key,
    parse_vkey,
)
from dnd_ledger.notary.verify import Report, verify_ledger

DEFAULT_KEY_FILE = "./dnd-ledger-signing.key"


# -- keys ------------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """The notary's Ed25519 signing key (kept in a file, never in the database)."""


@keys.command("generate")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help=f"Where to write the private key [default: $DND_LEDGER_SIGNING_KEY or {DEFAULT_KEY_FILE}].")  # fmt: skip
@click.option("--name", default="dnd-ledger", show_default=True, help="The key's name.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@click.pass_obj
@ledger_errors
def keys_generate(c: Ctx, out: str | None, name: str, force: bool) -> None:
    """Make a signing key; print its public verifier key on stdout.

    The private key file is written readable by its owner only. Give auditors
    the printed public key; point DND_LEDGER_SIGNING_KEY at the file.

    Example: dnd-ledger keys generate --out ledger.key > ledger.pub
    """
    path = Path(out or c.settings.signing_key_file or DEFAULT_KEY_FILE)
    try:
        private, vkey = generate_key(name)
    except NoteError as e:
        raise click.BadParameter(str(e), param_hint="--name") from e
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise click.ClickException(
            f"{path} already exists: refusing to replace a signing key (checkpoints it signed "
            "would no longer verify with the new one); pass --force to replace it"
        ) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {path}: {e}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    click.echo(
        f"wrote the private key to {path}; use it with DND_LEDGER_SIGNING_KEY={path}", err=True
    )
    click.echo(f"public key (give it to auditors): {fingerprint(vkey)}", err=True)
    click.echo(vkey)


@keys.command("public")
@pass_ctx
@ledger_errors
def keys_public(c: Ctx) -> None:
    """Print the public verifier key of the configured signing key.

    Example: DND_LEDGER_SIGNING_KEY=ledger.key dnd-ledger keys public > ledger.pub
    """
    key = c.settings.signing_key()
    if key is None:
        raise InvalidInput("no signing key is configured: set DND_LEDGER_SIGNING_KEY")
    click.echo(format_vkey(key.name, key.private_key.public_key()))


# -- checkpoints and the notary ---------------------------------------------------------------


@cli.command()
@json_option
@pass_ctx
@ledger_errors
def checkpoint(c: Ctx, as_json: bool) -> None:
    """Notarise every event now and checkpoint the tree (signed when a key is configured).

    Example: dnd-ledger checkpoint --json
    """
    record = c.ledger.notary.checkpoint()
    if record is None:
        raise InvalidInput("the ledger is empty: there is nothing to checkpoint")
    if as_json:
        emit_json(record.to_json())
        return
    click.echo(_checkpoint_line(record))
    click.echo(record.note, nl=False)


def _checkpoint_line(r: CheckpointRecord) -> str:
    how = f"signed by {r.key_name} ({r.key_fingerprint})" if r.signed else "UNSIGNED (no key)"
    return f"checkpoint at size {r.size}, made {format_time(r.created_at)}, {how}"


@cli.group()
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
    key = c.ledger.notary.public_key
    return parse_vkey(key) if key else None


@cli.command()
@click.option("--public-key", "public_key", help="Verifier key, or a file holding it "
              "[default: the configured signing key's].")  # fmt: skip
@click.option("--known-checkpoint", "known", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A signed checkpoint kept elsewhere (a note, or a bundle): the ledger must "
              "still contain it. Repeatable.")  # fmt: skip
@json_option
@pass_ctx
@ledger_errors
def verify(c: Ctx, public_key: str | None, known: tuple[str, ...], as_json: bool) -> None:
    """Recompute the notary's tree from the stored events and check every checkpoint.

    Names the first problem: which event (position, aggregate, version), what
    differs, which checkpoint no longer holds. Exit status: 0 all holds; 1 a
    problem was found; 3 nothing is wrong but nothing is signed (or no public
    key to check signatures with).

    Example: dnd-ledger verify --known-checkpoint last-month.bundle.json
    """
    notes = [_known_note(Path(f)) for f in known]
    result = verify_ledger(c.ledger, _public_key(c, public_key), known=notes)
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
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


# -- proofs -----------------------------------------------------------------------------------


@cli.group()
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


# -- auditor bundles --------------------------------------------------------------------------


@audit.command("export")
@click.argument("location")
@click.argument("contact_id", required=False)
@click.option("--bundle", "bundle_path", required=True, type=click.Path(dir_okay=False),
              help="The file to write.")  # fmt: skip
@pass_ctx
@ledger_errors
def audit_export(c: Ctx, location: str, contact_id: str | None, bundle_path: str) -> None:
    """Write an auditor bundle for a contact (or every contact of a location).

    It carries a freshly signed checkpoint, the PII-free metadata of every
    event under it, the contacts' stored events and their inclusion proofs.
    Check it with `audit verify-bundle` or `python -m dnd_ledger.notary.offline`.

    Example: dnd-ledger audit export loc-1 c-42 --bundle c-42.bundle.json
    """
    data = export_bundle(c.ledger, location, contact_id)
    Path(bundle_path).write_bytes(data)
    record = c.ledger.notary.latest_checkpoint()
    size = record.size if record else 0
    click.echo(f"wrote {bundle_path} ({len(data)} bytes): checkpoint at size {size}")


@audit.command("verify-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", "public_key", required=True,
              help="The ledger's verifier key, or a file holding it.")  # fmt: skip
@click.option("--as-of", type=TIME, help="Effective time [default: the checkpoint's time].")
@click.option("--known-at", type=TIME, help="Knowledge time [default: the checkpoint's time].")
@json_option
def audit_verify_bundle(
    file: str, public_key: str, as_of: datetime | None, known_at: datetime | None, as_json: bool
) -> None:
    """Verify a bundle offline (no database needed), then replay its contacts' DND state.

    Example: dnd-ledger audit verify-bundle c-42.bundle.json --public-key ledger.pub
    --as-of 2026-11-02T12:00:00Z
    """
    try:
        key = load_public_key(public_key)
        result = report(verify_bundle(Path(file).read_bytes(), key), as_of, known_at)
    except BundleError as e:
        raise click.ClickException(f"bundle rejected: {e}") from e
    if as_json:
        emit_json(result)
    else:
        click.echo(report_text(result))
