"""Tests for dnd_ledger.notary.merkle and dnd_ledger.notary.merkle_proofs.

Three independent sources of truth are used: the transparency-dev/merkle
probe vectors and reference roots under tests/data/merkle, a direct recursive
transcription of the RFC 6962 definitions below (for generated proofs), and a
structural oracle for the property test that says when a mutated claim must
still verify.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnd_ledger.notary import merkle, merkle_proofs
from dnd_ledger.notary.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
)
from dnd_ledger.notary.merkle_proofs import (
    consistency_proof,
    consistency_proof_from_subtrees,
    inclusion_proof,
    inclusion_proof_from_subtrees,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "merkle"
VECTOR_FILES = sorted(DATA.glob("**/*.json"))

# --- reference definitions (RFC 6962 §2.1, written recursively on purpose) ------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """PATH(m, D[lo:hi]) as the (start, end) leaf ranges of its hashes."""
    if hi - lo == 1:
        return []
    k = _k(hi - lo)
    if m < k:
        return [*ref_path_ranges(m, lo, lo + k), (lo + k, hi)]
    return [*ref_path_ranges(m - k, lo + k, hi), (lo, lo + k)]


def ref_subproof_ranges(m: int, lo: int, hi: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[lo:hi], b) as leaf ranges."""
    n = hi - lo
    if m == n:
        return [] if b else [(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof_ranges(m, lo, lo + k, b), (lo + k, hi)]
    return [*ref_subproof_ranges(m - k, lo + k, hi, False), (lo, lo + k)]


def ref_inclusion_proof(index: int, d: list[bytes]) -> list[bytes]:
    return [ref_mth(d[a:b]) for a, b in ref_path_ranges(index, 0, len(d))]


def ref_consistency_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [ref_mth(d[a:b]) for a, b in ref_subproof_ranges(m, 0, len(d), True)]


def make_leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


# --- the vector files ---------------------------------------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _load_vector(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    data["proof"] = [_b64(p) for p in data["proof"] or []]
    return data


def test_vector_files_are_all_present() -> None:
    # Guards against a broken glob silently turning the parametrised test into nothing.
    inclusion = [p for p in VECTOR_FILES if "inclusion" in p.parts]
    consistency = [p for p in VECTOR_FILES if "consistency" in p.parts]
    assert len(inclusion) == 98
    assert len(consistency) == 98
    assert (DATA / "SOURCE.md").is_file()


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[str(p.relative_to(DATA)) for p in VECTOR_FILES])
def test_vector(path: Path) -> None:
    v = _load_vector(path)
    check: Any
    if "leafIdx" in v:
        check = verify_inclusion
        args = (v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), v["proof"], _b64(v["root"]))
    else:
        check = verify_consistency
        args = (v["size1"], v["size2"], v["proof"], _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            check(*args)
    else:
        check(*args)


def _readme_table() -> tuple[list[bytes], dict[int, bytes], str]:
    readme = (DATA / "README.md").read_text()
    leaves_line = re.search(r"^leaves: (.*)$", readme, re.MULTILINE)
    assert leaves_line is not None
    leaves = [bytes.fromhex(x.strip('"')) for x in leaves_line.group(1).split(", ")]
    roots = {
        int(n): bytes.fromhex(h)
        for n, h in re.findall(r"^\| (\d+) \| ([0-9a-f]{64}) \|$", readme, re.MULTILINE)
    }
    return leaves, roots, readme


def test_readme_reference_roots() -> None:
    leaves, roots, _ = _readme_table()
    assert len(leaves) == 8
    assert sorted(roots) == list(range(9))
    hashes = [leaf_hash(x) for x in leaves]
    acc = CompactRange()
    for n in range(9):
        assert root_from_leaf_hashes(hashes[:n]) == roots[n], n
        assert ref_mth(hashes[:n]) == roots[n], n
        assert acc.root() == roots[n], n
        if n < 8:
            acc.append(hashes[n])


def test_readme_hash_examples() -> None:
    _, _, readme = _readme_table()
    leaf = re.search(r'leaf_hash\(b"L123456"\) = ([0-9a-f]{64})', readme)
    node = re.search(r'node_hash\(b"N123", b"N456"\) = ([0-9a-f]{64})', readme)
    assert leaf is not None
    assert node is not None
    assert leaf_hash(b"L123456").hex() == leaf.group(1)
    assert node_hash(b"N123", b"N456").hex() == node.group(1)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- generated proofs ---------------------------------------------------------------------

MAX_N = 40
LEAVES = make_leaves(MAX_N)
ROOTS = [ref_mth(LEAVES[:n]) for n in range(MAX_N + 1)]


def test_inclusion_proofs_for_every_index_and_size() -> None:
    checked = 0
    for n in range(1, MAX_N + 1):
        tree = LEAVES[:n]
        for i in range(n):
            proof = inclusion_proof(i, tree)
            assert proof == ref_inclusion_proof(i, tree), (i, n)
            verify_inclusion(i, n, tree[i], proof, ROOTS[n])
            assert root_from_inclusion_proof(i, n, tree[i], proof) == ROOTS[n]
            checked += 1
    assert checked == MAX_N * (MAX_N + 1) // 2


def test_consistency_proofs_for_every_pair_of_sizes() -> None:
    checked = 0
    for n in range(1, MAX_N + 1):
        tree = LEAVES[:n]
        for m in range(1, n + 1):
            proof = consistency_proof(m, tree)
            assert proof == ref_consistency_proof(m, tree), (m, n)
            verify_consistency(m, n, proof, ROOTS[m], ROOTS[n])
            assert root_from_consistency_proof(m, n, proof, ROOTS[m]) == ROOTS[n]
            checked += 1
    assert checked == MAX_N * (MAX_N + 1) // 2


def test_proofs_from_a_subtree_callback_ask_only_for_tree_nodes() -> None:
    asked: list[tuple[int, int]] = []

    def subtree_root(start: int, end: int) -> bytes:
        asked.append((start, end))
        return ref_mth(LEAVES[start:end])

    n = 37
    assert inclusion_proof_from_subtrees(20, n, subtree_root) == inclusion_proof(20, LEAVES[:n])
    assert sorted(asked) == sorted(ref_path_ranges(20, 0, n))
    asked.clear()
    assert consistency_proof_from_subtrees(13, n, subtree_root) == consistency_proof(13, LEAVES[:n])
    assert sorted(asked) == sorted(ref_subproof_ranges(13, 0, n, True))


def test_large_tree() -> None:
    n = 100_000
    leaves = make_leaves(n, b"big")
    root = root_from_leaf_hashes(leaves)
    old_root = root_from_leaf_hashes(leaves[:77_777])
    proof = inclusion_proof(12_345, leaves)
    assert len(proof) == 17
    verify_inclusion(12_345, n, leaves[12_345], proof, root)
    verify_consistency(77_777, n, consistency_proof(77_777, leaves), old_root, root)


def test_proof_generation_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(3, LEAVES[:3])
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(0, [])
    with pytest.raises(ValueError, match="non-negative"):
        inclusion_proof(-1, LEAVES[:3])
    with pytest.raises(ValueError, match="empty tree"):
        consistency_proof(0, LEAVES[:3])
    with pytest.raises(ValueError, match="larger"):
        consistency_proof(4, LEAVES[:3])
    assert consistency_proof(3, LEAVES[:3]) == []


# --- verification edge cases --------------------------------------------------------------


def test_inclusion_rejections_have_specific_messages() -> None:
    proof = inclusion_proof(2, LEAVES[:5])
    good = (2, 5, LEAVES[2], proof, ROOTS[5])
    verify_inclusion(*good)
    cases: list[tuple[tuple[Any, ...], str]] = [
        ((5, 5, LEAVES[2], proof, ROOTS[5]), "not below tree size"),
        ((0, 0, LEAVES[0], [], EMPTY_ROOT), "not below tree size"),
        ((-1, 5, LEAVES[2], proof, ROOTS[5]), "non-negative"),
        ((True, 5, LEAVES[2], proof, ROOTS[5]), "non-negative"),
        ((2, 5, LEAVES[2][:31], proof, ROOTS[5]), "leaf hash must be 32 bytes"),
        ((2, 5, LEAVES[2], proof[:-1], ROOTS[5]), "expected 3"),
        ((2, 5, LEAVES[2], [*proof, proof[0]], ROOTS[5]), "expected 3"),
        ((2, 5, LEAVES[2], [proof[0], proof[1][:-1], proof[2]], ROOTS[5]), "proof hash 1"),
        ((2, 5, LEAVES[3], proof, ROOTS[5]), "leads to root"),
        ((2, 5, LEAVES[2], proof, ROOTS[4]), "leads to root"),
    ]
    for args, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_inclusion(*args)


def test_consistency_rejections_have_specific_messages() -> None:
    proof = consistency_proof(3, LEAVES[:7])
    verify_consistency(3, 7, proof, ROOTS[3], ROOTS[7])
    cases: list[tuple[tuple[Any, ...], str]] = [
        ((7, 3, proof, ROOTS[7], ROOTS[3]), "larger than size2"),
        ((0, 7, [], EMPTY_ROOT, ROOTS[7]), "empty tree"),
        ((0, 0, [], EMPTY_ROOT, EMPTY_ROOT), "empty tree"),
        ((3, 3, proof, ROOTS[3], ROOTS[3]), "not empty"),
        ((3, 7, [], ROOTS[3], ROOTS[7]), "empty consistency proof"),
        ((3, 7, proof[:-1], ROOTS[3], ROOTS[7]), "expected 4"),
        ((3, 7, [*proof, proof[0]], ROOTS[3], ROOTS[7]), "expected 4"),
        ((3, 7, proof, ROOTS[3][:16], ROOTS[7]), "root1 must be 32 bytes"),
        ((3, 7, proof, ROOTS[4], ROOTS[7]), "first root"),
        ((3, 7, proof, ROOTS[3], ROOTS[6]), "second root"),
        ((3, 3, [], ROOTS[3], ROOTS[4]), "second root"),
    ]
    for args, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_consistency(*args)
    verify_consistency(3, 3, [], ROOTS[3], ROOTS[3])


def test_proof_error_is_a_value_error() -> None:
    assert issubclass(ProofError, ValueError)


def test_inclusion_proof_binds_the_root_not_the_tree_size() -> None:
    # Documented limitation of RFC 6962 proofs, and the reason checkpoints
    # sign (size, root) together: leaf 0's proof in a tree of 4 has the same
    # shape as in a tree of 3, so it also "verifies" against size 3 (a tree
    # whose third leaf hash would be the node hash of leaves 2 and 3).
    proof = inclusion_proof(0, LEAVES[:4])
    verify_inclusion(0, 4, LEAVES[0], proof, ROOTS[4])
    verify_inclusion(0, 3, LEAVES[0], proof, ROOTS[4])
    assert inclusion_frame(0, 3) == inclusion_frame(0, 4)


# --- compact range ------------------------------------------------------------------------


def test_compact_range_matches_full_roots_and_stays_logarithmic() -> None:
    leaves = make_leaves(200, b"cr")
    acc = CompactRange()
    assert acc.root() == EMPTY_ROOT
    for n, h in enumerate(leaves, start=1):
        acc.append(h)
        assert acc.size == n
        assert len(acc.hashes) == n.bit_count() <= n.bit_length()
        assert acc.root() == ref_mth(leaves[:n])


def test_compact_range_hashes_are_the_right_edge_subtrees() -> None:
    leaves = make_leaves(13)
    acc = CompactRange()
    acc.extend(leaves)
    # 13 = 8 + 4 + 1
    assert acc.hashes == (ref_mth(leaves[:8]), ref_mth(leaves[8:12]), leaves[12])


def test_compact_range_round_trips_through_its_state() -> None:
    leaves = make_leaves(50, b"state")
    acc = CompactRange()
    acc.extend(leaves[:29])
    state = acc.to_dict()
    assert json.loads(json.dumps(state)) == state
    restored = CompactRange.from_dict(state)
    assert restored == acc
    assert CompactRange.from_state(acc.size, acc.hashes) == acc
    restored.extend(leaves[29:])
    assert restored.root() == ref_mth(leaves)
    assert acc.size == 29  # restoring copied the state
    clone = acc.copy()
    clone.append(leaves[29])
    assert acc.size == 29
    assert clone.root() == ref_mth(leaves[:30])


def test_compact_range_rejects_impossible_state() -> None:
    h = make_leaves(3)
    with pytest.raises(ValueError, match="has 2 hashes"):
        CompactRange.from_state(3, h[:1])
    with pytest.raises(ValueError, match="has 0 hashes"):
        CompactRange.from_state(0, h[:1])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange.from_state(1, [b"short"])
    with pytest.raises(ValueError, match="non-negative"):
        CompactRange.from_state(-1, [])
    with pytest.raises(ValueError, match="integer 'size'"):
        CompactRange.from_dict({"size": "1", "hashes": [h[0].hex()]})
    with pytest.raises(ValueError, match="not hex"):
        CompactRange.from_dict({"size": 1, "hashes": ["zz"]})
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"\x00" * 31)


# --- property test: single mutations ------------------------------------------------------
#
# A mutated claim must be rejected unless it is, structurally, the same claim:
# the verifier only sees hashes, so if the tree shape above the proof's
# hashes is the same for the mutated sizes/index as for the real ones, the
# mutated claim is true of some tree and must verify. The "frame" below is
# that shape, computed from the RFC 6962 recursion (not from the verifier),
# with proof hashes labelled by their position in the proof.


def _frame(lo: int, hi: int, labels: dict[tuple[int, int], object]) -> object:
    if (lo, hi) in labels:
        return labels[(lo, hi)]
    if hi - lo == 1:
        return ("unknown leaf", lo)
    k = _k(hi - lo)
    return (_frame(lo, lo + k, labels), _frame(lo + k, hi, labels))


def inclusion_frame(index: int, size: int) -> object:
    labels: dict[tuple[int, int], object] = {
        r: i for i, r in enumerate(ref_path_ranges(index, 0, size))
    }
    labels[(index, index + 1)] = "leaf"
    return _frame(0, size, labels)


def consistency_frame(m: int, n: int) -> object:
    labels: dict[tuple[int, int], object] = {
        r: i for i, r in enumerate(ref_subproof_ranges(m, 0, n, True))
    }
    if m & (m - 1) == 0:
        labels[(0, m)] = "root1"  # the verifier supplies root1 itself
    return (_frame(0, m, labels), _frame(0, n, labels))


def test_frames_of_honest_proofs_are_complete() -> None:
    for n in range(1, 33):
        for i in range(n):
            assert "unknown" not in repr(inclusion_frame(i, n))
        for m in range(1, n):
            assert "unknown" not in repr(consistency_frame(m, n))


def _flip(h: bytes, byte: int, bit: int) -> bytes:
    b = bytearray(h)
    b[byte % len(b)] ^= 1 << bit
    return bytes(b)


def _accepts(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except ProofError:
        return False
    return True


PROPERTY_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _proof_targets(proof: list[bytes]) -> list[str]:
    """The mutations of the proof list itself that ``proof`` allows."""
    return [
        "add element",
        *(["proof element", "drop element"] if proof else []),
        *(["swap elements"] if len(proof) >= 2 else []),
    ]


def _mutate_proof(
    data: st.DataObject, target: str, proof: list[bytes], flip: tuple[int, int], extra: list[bytes]
) -> None:
    """Apply one of :func:`_proof_targets` to ``proof``, in place (``extra``: what to add)."""
    if target == "proof element":
        j = data.draw(st.integers(0, len(proof) - 1))
        proof[j] = _flip(proof[j], *flip)
    elif target == "drop element":
        del proof[data.draw(st.integers(0, len(proof) - 1))]
    elif target == "swap elements":
        i, j = data.draw(
            st.lists(st.integers(0, len(proof) - 1), min_size=2, max_size=2, unique=True)
        )
        proof[i], proof[j] = proof[j], proof[i]
    else:
        where = data.draw(st.integers(0, len(proof)))
        proof.insert(where, data.draw(st.sampled_from(extra)))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_single_mutation_of_an_inclusion_claim_is_rejected(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70), label="size")
    index = data.draw(st.integers(0, n - 1), label="index")
    leaves = make_leaves(n, data.draw(st.binary(max_size=4), label="salt"))
    proof = inclusion_proof(index, leaves)
    root = root_from_leaf_hashes(leaves)
    verify_inclusion(index, n, leaves[index], proof, root)

    targets = ["index", "size", "root", "leaf", *_proof_targets(proof)]
    target = data.draw(st.sampled_from(targets), label="target")
    byte, bit = data.draw(st.integers(0, 31)), data.draw(st.integers(0, 7))
    expected = False
    args: list[Any] = [index, n, leaves[index], list(proof), root]
    if target == "index":
        args[0] = data.draw(st.integers(0, 140).filter(lambda v: v != index))
        expected = args[0] < n and inclusion_frame(args[0], n) == inclusion_frame(index, n)
    elif target == "size":
        args[1] = data.draw(st.integers(0, 140).filter(lambda v: v != n))
        expected = args[0] < args[1] and inclusion_frame(index, args[1]) == inclusion_frame(
            index, n
        )
    elif target == "root":
        args[4] = _flip(root, byte, bit)
    elif target == "leaf":
        args[2] = _flip(leaves[index], byte, bit)
    else:
        _mutate_proof(data, target, args[3], (byte, bit), [*leaves, root, EMPTY_ROOT])
    assert _accepts(verify_inclusion, *args) == expected, (target, args[:2])


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_single_mutation_of_a_consistency_claim_is_rejected(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70), label="size2")
    m = data.draw(st.integers(1, n), label="size1")
    leaves = make_leaves(n, data.draw(st.binary(max_size=4), label="salt"))
    proof = consistency_proof(m, leaves)
    root1, root2 = root_from_leaf_hashes(leaves[:m]), root_from_leaf_hashes(leaves)
    verify_consistency(m, n, proof, root1, root2)

    targets = ["size1", "size2", "root1", "root2", *_proof_targets(proof)]
    target = data.draw(st.sampled_from(targets), label="target")
    byte, bit = data.draw(st.integers(0, 31)), data.draw(st.integers(0, 7))
    expected = False
    args: list[Any] = [m, n, list(proof), root1, root2]
    if target in ("size1", "size2"):
        pos = 0 if target == "size1" else 1
        args[pos] = data.draw(st.integers(0, 140).filter(lambda v: v != (m, n)[pos]))
        m2, n2 = args[0], args[1]
        if 0 < m2 < n2 and m < n:
            expected = consistency_frame(m2, n2) == consistency_frame(m, n)
        # m2 == 0, m2 > n2, or m2 == n2 with different real roots: always rejected.
    elif target == "root1":
        args[3] = _flip(root1, byte, bit)
    elif target == "root2":
        args[4] = _flip(root2, byte, bit)
    else:
        _mutate_proof(data, target, args[2], (byte, bit), [*leaves, root1, root2])
    assert _accepts(verify_consistency, *args) == expected, (target, args[:2])


def test_size_and_index_mutations_exhaustively_match_the_oracle() -> None:
    # Complements the random tests: every mutated size/index for trees up to 32.
    accepted = rejected = 0
    for n in range(1, 33):
        for i in range(n):
            proof = inclusion_proof(i, LEAVES[:n])
            for other in range(40):
                if other != n:
                    want = i < other and inclusion_frame(i, other) == inclusion_frame(i, n)
                    got = _accepts(verify_inclusion, i, other, LEAVES[i], proof, ROOTS[n])
                    assert got == want, ("size", i, n, other)
                    accepted += got
                    rejected += not got
                if other != i:
                    got = _accepts(verify_inclusion, other, n, LEAVES[i], proof, ROOTS[n])
                    assert not got, ("index", i, n, other)
        for m in range(1, n):
            proof = consistency_proof(m, LEAVES[:n])
            for m2, n2 in [(x, n) for x in range(40) if x != m] + [
                (m, x) for x in range(40) if x != n
            ]:
                want = 0 < m2 < n2 and consistency_frame(m2, n2) == consistency_frame(m, n)
                got = _accepts(verify_consistency, m2, n2, proof, ROOTS[m], ROOTS[n])
                assert got == want, (m, n, m2, n2)
                accepted += got
                rejected += not got
    # Both outcomes occur, so the oracle is doing real work.
    assert accepted > 0
    assert rejected > accepted


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), salt=st.binary(max_size=4))
def test_compact_range_equals_reference_root(n: int, salt: bytes) -> None:
    leaves = make_leaves(n, salt)
    assert root_from_leaf_hashes(leaves) == ref_mth(leaves)


# --- module boundaries --------------------------------------------------------------------


def test_merkle_modules_use_only_the_standard_library_and_each_other() -> None:
    imported: set[str] = set()
    for module in (merkle, merkle_proofs):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "no relative imports"
                name = node.module or ""
                imported.add(name if name == merkle.__name__ else name.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__", merkle.__name__}, imported
