"""RFC 6962 / RFC 9162 Merkle tree hashing: leaves, inner nodes, roots, the compact range.

The ledger's audit trail is an append-only log whose state is summarised by a
Merkle tree head (size + root). This module and
:mod:`dnd_ledger.notary.merkle_proofs` are the whole of the maths behind that
claim, and they use only the standard library on purpose: an offline auditor
must be able to check inclusion and consistency proofs without installing, or
trusting, the rest of the application.

Conventions:

* Leaves are addressed by 0-based index, and functions take *leaf hashes*
  (``leaf_hash(data)``), never raw entries, so that callers decide what an
  entry's canonical bytes are.
* Inclusion and consistency proofs, made and checked, are in ``merkle_proofs``,
  built on the hashes here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the tree with no leaves."""


class ProofError(ValueError):
    """A Merkle proof, or the claim it is supposed to support, does not hold."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data); the prefix keeps leaves distinct from inner nodes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right); see ``leaf_hash`` for why the prefix differs."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH(D[n]) per RFC 6962 §2.1.

    Computed incrementally with a compact range, so it needs O(n) hashing and
    O(log n) memory instead of recursion over the whole list.
    """
    acc = CompactRange()
    acc.extend(hashes)
    return acc.root()


class CompactRange:
    """An append-only Merkle tree that keeps only its right-edge subtree roots.

    A tree of size n is the concatenation of perfect subtrees, one per set bit
    of n, largest first. Storing only their roots (at most log2(n)+1 hashes)
    is enough to append further leaves and to compute the current root, which
    lets a projection maintain the log's root without holding every leaf
    hash. This is the "compact range" of transparency-dev/merkle's
    ``compact.Range``, restricted to ranges that start at leaf 0.

    ``size`` and ``hashes`` (or ``to_dict``) are the complete persistent state;
    ``from_state`` (or ``from_dict``) restores it.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a range from persisted state, rejecting state that cannot be valid."""
        check_count("size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            check_hash(h, f"compact range hash {i}", ValueError)
        rng = cls()
        rng._size = size
        rng._hashes = list(hashes)
        return rng

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CompactRange:
        """Inverse of ``to_dict``."""
        size = data.get("size")
        hashes = data.get("hashes")
        if not isinstance(size, int) or not isinstance(hashes, list):
            raise ValueError("compact range state needs an integer 'size' and a list 'hashes'")
        decoded: list[bytes] = []
        for h in hashes:
            if not isinstance(h, str):
                raise ValueError("compact range hashes must be hex strings")
            try:
                decoded.append(bytes.fromhex(h))
            except ValueError as exc:
                raise ValueError(f"compact range hash is not hex: {h!r}") from exc
        return cls.from_state(size, decoded)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees making up the tree, leftmost (largest) first."""
        return tuple(self._hashes)

    def to_dict(self) -> dict[str, int | list[str]]:
        """JSON-friendly state: ``{"size": n, "hashes": [hex, ...]}``."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash; costs at most log2(n) node hashes."""
        check_hash(leaf_hash, "leaf hash", ValueError)
        self._hashes.append(leaf_hash)
        # Each trailing 1 bit of the old size is a perfect subtree of the same
        # height as the one just completed on its right: merge them, as binary
        # addition carries.
        carry = self._size
        while carry & 1:
            right = self._hashes.pop()
            left = self._hashes.pop()
            self._hashes.append(node_hash(left, right))
            carry >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the leaves appended so far.

        RFC 6962 splits at the largest power of two, so the root is the
        right-to-left fold of the subtree roots: the smaller subtrees on the
        right combine first.
        """
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            root = node_hash(h, root)
        return root

    def copy(self) -> CompactRange:
        """An independent copy, e.g. to compute a root without committing an append."""
        return CompactRange.from_state(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def check_count(what: str, value: int, error: type[ValueError] = ProofError) -> None:
    """Refuse anything but a non-negative int (a bool too) as a size or an index."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(f"{what} must be a non-negative integer, got {value!r}")


def check_hash(value: bytes, what: str, error: type[ValueError] = ProofError) -> None:
    """Refuse anything but the bytes of one SHA-256 hash."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes) else type(value).__name__
        raise error(f"{what} must be {HASH_SIZE} bytes, got {size}")
