"""CLI commands for the notary's signing keys: generate, public, rotate."""

from __future__ import annotations

from pathlib import Path

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.files import write_private
from dnd_ledger.notary.records import format_time
from dnd_ledger.notary.rotation import rotate
from dnd_ledger.notary.signed_note import (
    NoteError,
    fingerprint,
    format_vkey,
    generate_key,
    load_private_key,
)

DEFAULT_KEY_FILE = "./dnd-ledger-signing.key"


# -- keys ------------------------------------------------------------------------------------


@click.group()
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
    _write_key(path, private, force)
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


def _write_key(path: Path, private: bytes, force: bool) -> None:
    try:
        write_private(path, private, replace=force)  # 0600, even over a looser file
    except FileExistsError:
        raise click.ClickException(
            f"{path} already exists: refusing to replace a signing key (checkpoints it signed "
            "would no longer verify with the new one); pass --force to replace it"
        ) from None
    except OSError as e:
        raise click.ClickException(f"cannot write {path}: {e}") from e


@keys.command("rotate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the new private key.")  # fmt: skip
@click.option("--name", help="The new key's name [default: the current key's].")
@pass_ctx
@ledger_errors
def keys_rotate(c: Ctx, out: str, name: str | None) -> None:
    """Replace the signing key: a checkpoint signed by the old and the new key hands over.

    Makes a new Ed25519 key, writes it to --out, and signs a checkpoint of the whole
    log that names the new key, with both keys. From then on only the new key signs;
    auditors keep verifying with the first public key they were given. Point
    DND_LEDGER_SIGNING_KEY at the new file afterwards (the old key signs nothing more).

    Example: dnd-ledger keys rotate --out ledger-2027.key
    """
    old = c.settings.signing_key()
    if old is None:
        raise InvalidInput("no signing key is configured: set DND_LEDGER_SIGNING_KEY to the "
                           "current key")  # fmt: skip
    path = Path(out)
    try:
        private, vkey = generate_key(name or old.name)
    except NoteError as e:
        raise click.BadParameter(str(e), param_hint="--name") from e
    new = load_private_key(private)
    _write_key(path, private, force=False)  # first: a hand-over to a key not kept is a dead end
    try:
        record = rotate(c.ledger.notary, new)
    except BaseException:
        path.unlink()
        raise
    click.echo(f"wrote the new private key to {path}; set DND_LEDGER_SIGNING_KEY={path}", err=True)
    click.echo(
        f"key hand-over at size {record.size}, made {format_time(record.created_at)}: signed by "
        f"{old.name} ({fingerprint(old.private_key.public_key())}) and {new.name} "
        f"({fingerprint(vkey)})",
        err=True,
    )
    click.echo(vkey)
