"""Every perfect subtree of a log held in memory, for roots and proofs at any size.

The notary persists only the compact range it needs to extend the tree; when
someone asks for a proof (or ``verify`` recomputes the roots of every
checkpoint), the leaf hashes are read once and the perfect subtrees above them
are kept here, level by level, 32 bytes each: 2n hashes in all. A subtree root
for any range the RFC 6962 recursion asks for then costs O(log n) lookups
instead of rehashing its leaves.
"""

from __future__ import annotations

from collections.abc import Iterable

from dnd_ledger.notary.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from dnd_ledger.notary.merkle_proofs import (
    consistency_proof_from_subtrees,
    inclusion_proof_from_subtrees,
)


class TreeLevels:
    """An append-only Merkle tree keeping all of its perfect subtree roots."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        levels = self._levels
        levels[0] += leaf_hash
        i, level = self._size, 0
        while i & 1:
            row = levels[level]
            parent = node_hash(bytes(row[-2 * HASH_SIZE : -HASH_SIZE]), bytes(row[-HASH_SIZE:]))
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
            i >>= 1
        self._size += 1

    def leaf(self, index: int) -> bytes:
        return self._node(0, index)

    def _node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range inside the tree."""
        if not 0 <= start <= end <= self._size:
            raise ValueError(f"range {start}..{end} is outside a tree of size {self._size}")
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree_root(start, start + k), self.subtree_root(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree_root(0, self._size if size is None else size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return inclusion_proof_from_subtrees(index, size, self.subtree_root)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        return consistency_proof_from_subtrees(old_size, new_size, self.subtree_root)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} is beyond the {self._size} leaves of the tree")


__all__ = ["TreeLevels"]
