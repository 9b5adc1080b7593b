"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The ledger's audit trail is an append-only log whose state is summarised by a
Merkle tree head (size + root). This module is the whole of the maths behind
that claim, and it uses only the standard library on purpose: an offline
auditor must be able to check inclusion and consistency proofs without
installing, or trusting, the rest of the application.

Conventions:

* Leaves are addressed by 0-based index, and functions take *leaf hashes*
  (``leaf_hash(data)``), never raw entries, so that callers decide what an
  entry's canonical bytes are.
* Proof hashes are ordered from the leaf (or the old tree's edge) upwards,
  exactly as in RFC 6962 §2.1.1 and §2.1.2, so proofs interoperate with other
  implementations (Certificate Transparency, transparency-dev/merkle, Sigsum).
* Verification follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by
  step. The expected proof length is also checked up front, so that a
  malformed proof is reported as such rather than as a root mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the tree with no leaves."""

SubtreeRoot = Callable[[int, int], bytes]
"""``f(start, end)`` returning MTH(D[start:end]) for a subtree of the log.

Proof generators only ever ask for ranges that are nodes of the tree, so a
store that caches node hashes can answer without touching every leaf.
"""


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
        _check_count("size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash(h, f"compact range hash {i}", ValueError)
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
        _check_hash(leaf_hash, "leaf hash", ValueError)
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


# --- proof generation (RFC 6962 §2.1.1, §2.1.2) ---------------------------------------------


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) for the tree made of all of ``leaf_hashes``.

    Costs O(n) hashing: the sibling subtrees along the path cover the tree
    at most once.
    """
    return inclusion_proof_from_subtrees(index, len(leaf_hashes), _subtrees_of(leaf_hashes))


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[n]) for the tree made of all of ``leaf_hashes``.

    Defined for 0 < old_size <= n (empty when old_size == n): nothing can
    be proved about the empty tree, so a request from size 0 is refused.
    """
    return consistency_proof_from_subtrees(old_size, len(leaf_hashes), _subtrees_of(leaf_hashes))


def inclusion_proof_from_subtrees(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """``inclusion_proof`` for a log whose subtree roots come from ``subtree_root``.

    Walks the RFC 6962 PATH recursion top-down, then reverses, so the result
    lists the leaf's sibling first and the root's child last.
    """
    _check_count("index", index, ValueError)
    _check_count("size", size, ValueError)
    if index >= size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split_point(hi - lo)
        if index < lo + k:
            path.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof_from_subtrees(
    old_size: int, new_size: int, subtree_root: SubtreeRoot
) -> list[bytes]:
    """``consistency_proof`` for a log whose subtree roots come from ``subtree_root``.

    Iterative form of RFC 6962 SUBPROOF(m, D[n], b): descend while the old
    tree is a strict prefix of the current subtree, collecting the subtree
    not on the path, then emit MTH(D[m]) of the final subtree unless it is
    the old tree itself (b still true, i.e. old_size is a power of two and
    the verifier already knows that root).
    """
    _check_count("old size", old_size, ValueError)
    _check_count("new size", new_size, ValueError)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        raise ValueError("a consistency proof from the empty tree is meaningless")
    proof: list[bytes] = []
    lo, hi, m = 0, new_size, old_size
    whole_old_tree = True
    while m != hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            proof.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_root(lo, lo + k))
            lo += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(subtree_root(lo, hi))
    proof.reverse()
    return proof


def _subtrees_of(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    def subtree_root(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(leaf_hashes[i] for i in range(start, end))

    return subtree_root


def _split_point(n: int) -> int:
    """Largest power of two strictly below n (n >= 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


# --- proof verification (RFC 9162 §2.1.3.2, §2.1.4.2) ----------------------------------------


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` ties ``leaf_hash`` at ``leaf_index`` to, in a tree of ``tree_size``.

    Raises ProofError if the inputs cannot form a valid proof at all.
    """
    _check_count("leaf index", leaf_index)
    _check_count("tree size", tree_size)
    # Step 1.
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is not below tree size {tree_size}")
    _check_hash(leaf_hash, "leaf hash")
    path = _check_proof(proof)
    want = _inclusion_proof_length(leaf_index, tree_size)
    if len(path) != want:
        raise ProofError(
            f"inclusion proof has {len(path)} hashes, expected {want} "
            f"for leaf {leaf_index} in a tree of size {tree_size}"
        )
    # Steps 2-3.
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    # Step 4.
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5 (the root comparison is left to the caller).
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``leaf_index`` of the tree ``(tree_size, root)``.

    Returns None on success and raises ProofError otherwise.
    """
    calculated = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)
    if calculated != root:
        raise ProofError(
            f"inclusion proof leads to root {calculated.hex()}, expected {bytes(root).hex()}"
        )


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The root of the size2 tree that ``proof`` shows extends the tree ``(size1, root1)``.

    Raises ProofError if the proof is malformed or does not reproduce root1.
    Size 0 is refused: every tree extends the empty tree, so such a "proof"
    would prove nothing and is more likely a caller's mistake.
    """
    _check_count("size1", size1)
    _check_count("size2", size2)
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is larger than size2 ({size2})")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree (size1 = 0) is meaningless")
    path = _check_proof(proof)
    if size1 == size2:
        if path:
            raise ProofError(f"sizes are equal ({size1}) but the proof is not empty")
        return root1
    # Step 1.
    if not path:
        raise ProofError(f"empty consistency proof between different sizes {size1} and {size2}")
    _check_hash(root1, "root1")
    want = _consistency_proof_length(size1, size2)
    if len(path) != want:
        raise ProofError(
            f"consistency proof has {len(path)} hashes, expected {want} "
            f"between sizes {size1} and {size2}"
        )
    # Step 2.
    if size1 & (size1 - 1) == 0:
        path = [root1, *path]
    # Step 3.
    fn, sn = size1 - 1, size2 - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7 (the second root comparison is left to the caller).
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != root1:
        raise ProofError(
            f"consistency proof leads to first root {fr.hex()}, expected {root1.hex()}"
        )
    return sr


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` is an append-only extension of ``(size1, root1)``.

    Returns None on success and raises ProofError otherwise. With equal
    sizes the proof must be empty and the roots are compared as given.
    """
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    if calculated != root2:
        raise ProofError(
            f"consistency proof leads to second root {bytes(calculated).hex()}, "
            f"expected {bytes(root2).hex()}"
        )


def _inclusion_proof_length(index: int, size: int) -> int:
    # Below the level where the paths to `index` and to the last leaf part,
    # there is one sibling per level; above it, one left sibling per set bit.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_proof_length(size1: int, size2: int) -> int:
    # A consistency proof is the upper part of the inclusion proof of leaf
    # size1-1, starting from the largest perfect subtree ending at size1,
    # plus that subtree's root unless it is the whole old tree.
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    start = 0 if size1 == 1 << shift else 1
    return start + (inner - shift) + border


def _check_count(what: str, value: int, error: type[ValueError] = ProofError) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(f"{what} must be a non-negative integer, got {value!r}")


def _check_hash(value: bytes, what: str, error: type[ValueError] = ProofError) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes) else type(value).__name__
        raise error(f"{what} must be {HASH_SIZE} bytes, got {size}")


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    path = list(proof)
    for i, h in enumerate(path):
        _check_hash(h, f"proof hash {i}")
    return path
