"""RFC 6962 / RFC 9162 inclusion and consistency proofs: made, and checked.

Proof hashes are ordered from the leaf (or the old tree's edge) upwards, exactly
as in RFC 6962 §2.1.1 and §2.1.2, so proofs interoperate with other
implementations (Certificate Transparency, transparency-dev/merkle, Sigsum).
Verification follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by step.
The expected proof length is also checked up front, so that a malformed proof is
reported as such rather than as a root mismatch.

Like :mod:`dnd_ledger.notary.merkle`, this module uses only the standard library,
so that an offline auditor can check proofs without the rest of the application.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dnd_ledger.notary.merkle import (
    ProofError,
    check_count,
    check_hash,
    node_hash,
    root_from_leaf_hashes,
)

SubtreeRoot = Callable[[int, int], bytes]
"""``f(start, end)`` returning MTH(D[start:end]) for a subtree of the log.

Proof generators only ever ask for ranges that are nodes of the tree, so a
store that caches node hashes can answer without touching every leaf.
"""


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
    check_count("index", index, ValueError)
    check_count("size", size, ValueError)
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
    check_count("old size", old_size, ValueError)
    check_count("new size", new_size, ValueError)
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
    check_count("leaf index", leaf_index)
    check_count("tree size", tree_size)
    # Step 1.
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is not below tree size {tree_size}")
    check_hash(leaf_hash, "leaf hash")
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
    check_count("size1", size1)
    check_count("size2", size2)
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
    check_hash(root1, "root1")
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


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    path = list(proof)
    for i, h in enumerate(path):
        check_hash(h, f"proof hash {i}")
    return path
