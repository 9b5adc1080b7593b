"""CLI commands for witnesses: ``witness generate`` and ``witness serve`` (C2SP tlog-witness)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dnd_ledger.files import write_private
from dnd_ledger.notary.cosign import WitnessKey, format_witness_vkey
from dnd_ledger.notary.offline import BundleError, load_public_key, load_witness_key
from dnd_ledger.notary.signed_note import NoteError, format_private_key, load_private_key
from dnd_ledger.notary.witness import Witness, make_server

F = TypeVar("F", bound=Callable[..., Any])


def witness_key_option(f: F) -> F:
    return click.option(
        "--witness-key", "witness_keys", multiple=True, metavar="KEY",
        help="A witness's verifier key (from `witness generate`), or a file holding it. "
        "Repeatable.",
    )(f)  # fmt: skip


def witness_keys_of(values: tuple[str, ...]) -> list[WitnessKey]:
    try:
        return [load_witness_key(v) for v in values]
    except BundleError as e:
        raise click.BadParameter(str(e), param_hint="--witness-key") from e


@click.group()
def witness() -> None:
    """A witness: cosigns a ledger's checkpoints once they extend what it saw before."""


@witness.command("generate")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the witness's private key.")  # fmt: skip
@click.option("--name", default="witness.example/dnd", show_default=True,
              help="The witness's name (a schema-less URL, by convention).")  # fmt: skip
def witness_generate(out: str, name: str) -> None:
    """Make a witness key; print its verifier key (give it to whoever checks cosignatures).

    Example: dnd-ledger witness generate --out witness.key > witness.pub
    """
    private = Ed25519PrivateKey.generate()
    try:
        data = format_private_key(name, private)
    except NoteError as e:
        raise click.BadParameter(str(e), param_hint="--name") from e
    try:
        write_private(Path(out), data, replace=False)
    except FileExistsError:
        raise click.ClickException(f"{out} already exists: refusing to replace a key") from None
    click.echo(f"wrote the witness key to {out}", err=True)
    click.echo(format_witness_vkey(name, private.public_key()))


@witness.command("serve")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The witness's private key (from `witness generate`).")  # fmt: skip
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for what the witness has cosigned (keep it: losing it lets the "
              "witness be rolled back).")  # fmt: skip
@click.option("--log-key", "log_keys", multiple=True, required=True, metavar="KEY",
              help="A ledger's first public key (ledger.pub) whose checkpoints this witness "
              "cosigns. Repeatable.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7380, show_default=True, type=click.IntRange(0, 65535))
def witness_serve(
    key_file: str, state_dir: str, log_keys: tuple[str, ...], host: str, port: int
) -> None:
    """Run the witness: POST /add-checkpoint as C2SP tlog-witness defines it.

    \b
    Example:
      dnd-ledger witness serve --key witness.key --state witness-state --log-key ledger.pub
    """
    try:
        key = load_private_key(Path(key_file).read_bytes())
        logs = [load_public_key(k) for k in log_keys]
    except (NoteError, BundleError) as e:
        raise click.ClickException(str(e)) from e
    server = make_server(Witness(key, Path(state_dir), logs), host, port)
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"witness {key.name} listening on http://{bound_host!s}:{bound_port}", err=True)
    click.echo(format_witness_vkey(key.name, key.private_key.public_key()), err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
