"""The three NAS-Bench-1Shot1 search spaces (SPEC §3): sizes, enumeration, the benchmark's
discretization rule (hand-worked architectures, ties, pruning) and the real-data cross-check."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.errors import OutOfDomainError, UnknownNameError
from benchmarks.nasbench1shot1 import PRIMITIVES, CellChoice, get_search_space
from benchmarks.nasbench1shot1.spaces import DUMMY_OP
from benchmarks.nasbench101 import ModelSpec
from benchmarks.nasbench101.graph_hash import graph_hash
from benchmarks.nasbench101.model_spec import PADDING_LABEL

IN, OUT = "input", "output"
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
OP_INDEX = {op: i for i, op in enumerate(PRIMITIVES)}
HOT = 5.0
"""A logit that wins any softmax over entries of 0 by a wide margin."""

# space: (choice nodes, alpha shapes, alpha count, graphs, configurations, distinct models, models in the fragments)
SIZES = {
    1: (4, [(4, 3), (1, 5), (1, 3), (1, 4)], 24, 180, 14_580, 2_685, 195),
    2: (4, [(4, 3), (1, 5), (1, 2), (1, 3), (1, 4)], 26, 360, 29_160, 7_773, 572),
    3: (5, [(5, 3), (1, 6), (1, 2), (1, 3), (1, 4), (1, 5)], 35, 5_400, 1_312_200, 55_854, 4_023),
}


def hand_alphas(space_number: int, ops: list[str], output: tuple[int, ...], inputs: dict[int, tuple[int, ...]]):
    """Alphas that make `ops` win at each choice node and the given parents win each searched row."""
    shapes = SIZES[space_number][1]
    alphas = [np.zeros(shape) for shape in shapes]
    for node, op in enumerate(ops):
        alphas[0][node, OP_INDEX[op]] = HOT
    alphas[1][0, list(output)] = HOT
    for row, node in zip(alphas[2:], sorted(inputs)):
        assert row.shape == (1, node)
        row[0, list(inputs[node])] = HOT
    return alphas


def zero_alphas(space_number: int) -> list[np.ndarray]:
    return [np.zeros(shape) for shape in SIZES[space_number][1]]


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3])
def test_alpha_shapes_and_sizes(number):
    n, shapes, size, *_ = SIZES[number]
    space = get_search_space(number)
    assert space.number == number and space.num_choice_nodes == n
    assert space.alpha_shapes == shapes
    assert space.num_alphas == size == sum(r * c for r, c in shapes)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_graph_and_configuration_counts(number):
    n, _, _, graphs, configs, *_ = SIZES[number]
    space = get_search_space(number)
    all_graphs = list(space.graphs())
    assert len(all_graphs) == graphs
    assert len(set(all_graphs)) == graphs
    assert len(all_graphs) * len(PRIMITIVES) ** n == configs
    # the product of the per-node choices, counted by hand from SPEC §3's parent table
    per_node = [len(space.parent_choices(node)) for node in range(1, n + 2)]
    assert math.prod(per_node) == graphs


def test_parent_choices_follow_the_spec_table():
    s1, s2, s3 = (get_search_space(i) for i in (1, 2, 3))
    assert s1.parent_choices(1) == [(0,)] and s1.parent_choices(2) == [(0, 1)]
    assert s1.parent_choices(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(s1.parent_choices(4)) == 6 and len(s1.parent_choices(5)) == 10  # C(4,2), output C(5,2)
    assert s2.parent_choices(2) == [(0,), (1,)] and len(s2.parent_choices(5)) == 10  # output C(5,3)
    assert [len(s3.parent_choices(node)) for node in range(1, 7)] == [1, 2, 3, 6, 10, 15]


@pytest.mark.parametrize("number", [1, 2, 3])
def test_distinct_model_counts(number):
    space = get_search_space(number)
    hashes = space.hashes()
    assert space.num_models == len(hashes) == SIZES[number][5]
    assert len(set(hashes)) == len(hashes)
    assert all(len(h) == 32 and int(h, 16) >= 0 for h in hashes[::97])


@pytest.mark.parametrize("number", [1, 2, 3])
def test_every_enumerated_model_is_valid_and_hashes_to_its_listed_hash(number):
    space = get_search_space(number)
    hashes = space.hashes()
    specs = list(space.enumerate())  # ModelSpec construction validates every one of them
    assert len(specs) == len(hashes)
    sample = [*range(0, len(specs), 50), len(specs) - 1]
    for i in sample:
        spec = specs[i]
        assert spec.num_vertices <= 7 and spec.num_edges <= 9
        assert spec.ops[0] == IN and spec.ops[-1] == OUT
        assert graph_hash(spec.matrix, spec.labels) == hashes[i]
        # the stored spec is already pruned: building it again changes nothing
        assert ModelSpec(spec.matrix, spec.ops).hash() == hashes[i]


@pytest.mark.parametrize(("number", "digest"), [(1, "c077a31850ff135a"), (2, "0c6681e4a6fc8fab")])
def test_the_enumeration_is_the_same_bytes_in_the_same_order(number: int, digest: str) -> None:
    """Digests of the model lists as the first enumeration wrote them (f60cbbe, which hashed every
    labelling): any change of models, order, layout or dtype would move every cache and table."""
    arrays = get_search_space(number)._enumerate_models()
    hasher = hashlib.blake2b(digest_size=8)
    for array in arrays:
        hasher.update(array.tobytes())
    assert hasher.hexdigest() == digest and [a.dtype.str for a in arrays] == ["|i1", "|i1", "|S32"]


def test_model_arrays_are_the_enumerated_models_read_only():
    space = get_search_space(2)
    matrices, labels, hashes = space.model_arrays()
    assert hashes.astype(str).tolist() == space.hashes()
    for i, spec in zip(range(0, space.num_models, 331), list(space.enumerate())[::331]):
        size = spec.num_vertices
        assert (matrices[i, :size, :size] == spec.matrix).all() and labels[i, :size].tolist() == spec.labels
        assert (matrices[i, size:] == 0).all() and (labels[i, size:] == PADDING_LABEL).all()
    with pytest.raises(ValueError, match="read-only"):
        labels[0, 0] = 1


def test_space1_enumeration_equals_brute_force_over_all_configurations():
    """All 14,580 configurations of space 1, discretized one by one, give exactly the listed 2,685 models."""
    space = get_search_space(1)
    seen = set()
    for parents, output_parents in space.graphs():
        for ops in itertools.product(range(3), repeat=space.num_choice_nodes):
            seen.add(space.to_spec(CellChoice(ops, parents, output_parents)).hash())
    assert seen == set(space.hashes())


@pytest.mark.parametrize("number", [2, 3])
def test_random_configurations_are_enumerated(number):
    space = get_search_space(number)
    hashes = set(space.hashes())
    graphs = list(space.graphs())
    rng = np.random.default_rng(number)
    for _ in range(300):
        parents, output_parents = graphs[rng.integers(len(graphs))]
        ops = tuple(int(o) for o in rng.integers(0, 3, space.num_choice_nodes))
        assert space.to_spec(CellChoice(ops, parents, output_parents)).hash() in hashes


# --- discretization: hand-worked architectures --------------------------------------------------

# Each case: hand-made alphas, the pruned matrix and ops worked out on paper, and the
# original (unpruned, 7-vertex) matrix's parents per column.
HAND_CASES = {
    # Space 1: node1 <- {0} conv3x3, node2 <- {0,1} conv1x1, node3 <- {0,2} maxpool,
    # node4 <- {0,1} conv1x1, output <- {0,4}. Nobody reads node 3 -> pruned; node 2 is then only
    # read by a pruned node -> pruned too. Dummy vertex 5 pruned. Left: input, node1, node4, output.
    1: dict(
        ops=[C3, C1, MP, C1],
        output=(0, 4),
        inputs={3: (0, 2), 4: (0, 1)},
        choice=CellChoice((1, 2, 0, 2), ((0,), (0, 1), (0, 2), (0, 1)), (0, 4)),
        matrix=[
            [0, 1, 1, 1],
            [0, 0, 1, 0],
            [0, 0, 0, 1],
            [0, 0, 0, 0],
        ],
        pruned_ops=[IN, C3, C1, OUT],
    ),
    # Space 2: node1 <- {0} maxpool, node2 <- {0} conv3x3, node3 <- {1,2} conv1x1,
    # node4 <- {0,2} maxpool, output <- {0,2,4}. Node 3 is unread -> pruned; node 1 was read only by
    # node 3 -> pruned. Left: input, node2, node4, output.
    2: dict(
        ops=[MP, C3, C1, MP],
        output=(0, 2, 4),
        inputs={2: (0,), 3: (1, 2), 4: (0, 2)},
        choice=CellChoice((0, 1, 2, 0), ((0,), (0,), (1, 2), (0, 2)), (0, 2, 4)),
        matrix=[
            [0, 1, 1, 1],
            [0, 0, 1, 1],
            [0, 0, 0, 1],
            [0, 0, 0, 0],
        ],
        pruned_ops=[IN, C3, MP, OUT],
    ),
    # Space 3: node1 <- {0} conv1x1, node2 <- {1} conv3x3, node3 <- {0} maxpool,
    # node4 <- {1,3} conv3x3, node5 <- {0,4} conv1x1, output <- {1,5}. Node 2 is unread -> pruned.
    # Left: input, node1, node3, node4, node5, output (no dummy in space 3).
    3: dict(
        ops=[C1, C3, MP, C3, C1],
        output=(1, 5),
        inputs={2: (1,), 3: (0,), 4: (1, 3), 5: (0, 4)},
        choice=CellChoice((2, 1, 0, 1, 2), ((0,), (1,), (0,), (1, 3), (0, 4)), (1, 5)),
        matrix=[
            [0, 1, 1, 0, 1, 0],
            [0, 0, 0, 1, 0, 1],
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
        pruned_ops=[IN, C1, MP, C3, C1, OUT],
    ),
}


@pytest.mark.parametrize("number", [1, 2, 3])
def test_discretize_hand_made_alphas(number):
    case = HAND_CASES[number]
    space = get_search_space(number)
    alphas = hand_alphas(number, case["ops"], case["output"], case["inputs"])
    assert space.choose(alphas) == case["choice"]
    spec = space.discretize(alphas)
    np.testing.assert_array_equal(spec.matrix, np.array(case["matrix"]))
    assert spec.ops == case["pruned_ops"]
    expected_hash = ModelSpec(np.array(case["matrix"]), case["pruned_ops"]).hash()
    assert spec.hash() == expected_hash
    assert expected_hash in set(space.hashes())
    # before pruning: 7 vertices, the choice nodes' ops in order, the dummy (spaces 1, 2) unconnected
    original = spec.original_matrix
    assert original.shape == (7, 7)
    assert spec.original_ops[1 : 1 + space.num_choice_nodes] == case["ops"]
    for node, parents in enumerate(case["choice"].parents, start=1):
        assert np.flatnonzero(original[:, node]).tolist() == list(parents)
    assert np.flatnonzero(original[:, 6]).tolist() == list(case["output"])
    if number in (1, 2):
        assert spec.original_ops[5] == DUMMY_OP == C1
        assert not original[5].any() and not original[:, 5].any()


@pytest.mark.parametrize("number", [1, 2, 3])
def test_discretize_accepts_tensors_and_arrays_alike(number):
    case = HAND_CASES[number]
    space = get_search_space(number)
    arrays = hand_alphas(number, case["ops"], case["output"], case["inputs"])
    expected = space.discretize(arrays).hash()
    tensors64 = [torch.from_numpy(a) for a in arrays]
    tensors32 = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in arrays]
    lists = [a.tolist() for a in arrays]
    for alphas in (tensors64, tensors32, lists, tuple(arrays)):
        assert space.discretize(alphas).hash() == expected
        assert space.choose(alphas) == case["choice"]


def test_init_sized_alphas_decide_by_their_largest_entries():
    """Init-sized alphas (1e-3 scale) with a common offset: the largest logits of each row win."""
    space = get_search_space(1)
    alphas = [np.full(shape, -7.0) for shape in space.alpha_shapes]
    alphas[0][:, :] += np.array([[1e-3, 3e-3, 2e-3], [3e-3, 1e-3, 2e-3], [1e-3, 2e-3, 3e-3], [2e-3, -1e-3, 0.0]])
    alphas[1][0] += [1e-3, -2e-3, 2e-3, 0.0, 3e-3]
    alphas[2][0] += [-1e-3, 1e-3, 2e-3]
    alphas[3][0] += [2e-3, 0.0, 1e-3, -3e-3]
    choice = space.choose(alphas)
    assert choice == CellChoice((1, 0, 2, 0), ((0,), (0, 1), (1, 2), (0, 2)), (2, 4))


def test_ties_are_decided_after_the_softmax_as_the_reference_does():
    """The reference ranks softmax(alphas), not the alphas: differences that the softmax rounds away
    are ties (argmax -> first, argpartition -> last here), even where the raw alphas differ."""
    space = get_search_space(1)
    alphas = zero_alphas(1)
    alphas[0][0] = [0.0, 1e-20, 0.0]  # raw argmax: conv3x3; softmax ties -> maxpool
    alphas[0][1] = [0.0, 1.0, 1e-20]  # clear winner: conv3x3
    alphas[2][0] = [0.0, 1e-20, 0.0]  # node 3, k = 2 of a softmax tie -> (1, 2) (raw alphas: 1 and 0 or 2)
    alphas[3][0] = [1e-20, 0.0, 0.0, 0.0]  # node 4, k = 2: raw top-2 would hold 0; tie -> (2, 3)
    alphas[1][0] = [1e-20, 0.0, 0.0, 0.0, 0.0]  # output, k = 2 -> (3, 4)
    assert _softmax_row_is_flat(alphas[3][0])
    assert space.choose(alphas) == CellChoice((0, 1, 0, 0), ((0,), (0, 1), (1, 2), (2, 3)), (3, 4))


def _softmax_row_is_flat(row: np.ndarray) -> bool:
    e = np.exp(row - row.max())
    p = e / e.sum()
    return bool((p == p[0]).all())


# --- discretization: ties -----------------------------------------------------------------------


def test_tie_rule_of_the_reference_on_this_platform():
    """The benchmark picks parents with np.argpartition(softmax(row), -k)[-k:]: on exact ties that is
    the last k indices here. Op ties go to the first maximum (argmax)."""
    for m in range(2, 7):
        for k in range(1, m):
            row = np.full(m, 1.0 / m)
            assert sorted(np.argpartition(row, -k)[-k:].tolist()) == list(range(m - k, m)), (m, k)


# all-zero alphas: every op = maxpool (index 0, the first maximum); every searched parent set =
# the last k candidates; with all nodes live, pruning only drops the dummy vertex.
ZERO_CASES = {
    1: (
        CellChoice((0, 0, 0, 0), ((0,), (0, 1), (1, 2), (2, 3)), (3, 4)),
        [
            [0, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
    ),
    2: (
        CellChoice((0, 0, 0, 0), ((0,), (1,), (1, 2), (2, 3)), (2, 3, 4)),
        [
            [0, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0],
        ],
    ),
    3: (
        CellChoice((0, 0, 0, 0, 0), ((0,), (1,), (2,), (2, 3), (3, 4)), (4, 5)),
        [
            [0, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0],
        ],
    ),
}


@pytest.mark.parametrize("number", [1, 2, 3])
def test_all_zero_alphas_follow_the_reference_tie_rule(number):
    space = get_search_space(number)
    choice, matrix = ZERO_CASES[number]
    assert space.choose(zero_alphas(number)) == choice
    spec = space.discretize(zero_alphas(number))
    n = space.num_choice_nodes
    np.testing.assert_array_equal(spec.matrix, np.array(matrix))
    assert spec.ops == [IN, *[MP] * n, OUT]
    assert spec.num_edges == 9
    assert spec.hash() == ModelSpec(np.array(matrix), [IN, *[MP] * n, OUT]).hash()


def test_partial_ties():
    """Two-way ties inside a row, with a clear winner elsewhere (space 1)."""
    space = get_search_space(1)
    alphas = zero_alphas(1)
    alphas[0][0] = [1.0, 1.0, 0.0]  # maxpool ties conv3x3: first maximum -> maxpool
    alphas[0][1] = [0.0, 2.0, 2.0]  # conv3x3 ties conv1x1 -> conv3x3
    alphas[0][2] = [0.0, 0.0, 3.0]  # clear: conv1x1
    alphas[2][0] = [1.0, 1.0, 1.0]  # node 3: k = 2 of a three-way tie -> (1, 2)
    alphas[3][0] = [2.0, 1.0, 1.0, 0.0]  # node 4: 0 wins, 1 and 2 tie for the second place
    alphas[1][0] = [0.0, 1.0, 0.0, 1.0, 0.0]  # output: 1 and 3 tie, and k = 2 takes both -> (1, 3)
    choice = space.choose(alphas)
    expected_node4 = tuple(sorted(np.argpartition(np.array([2.0, 1.0, 1.0, 0.0]), -2)[-2:].tolist()))
    assert expected_node4 in [(0, 1), (0, 2)]
    assert choice == CellChoice((0, 1, 2, 0), ((0,), (0, 1), (1, 2), expected_node4), (1, 3))


# --- loose ends and pruning ------------------------------------------------------------------------


def test_node_read_by_nobody_is_pruned_with_its_exclusive_ancestors():
    """Space 3: output <- {0, 1}; nodes 2..5 are read by nobody but each other -> all pruned."""
    space = get_search_space(3)
    choice = CellChoice((1, 2, 0, 1, 2), ((0,), (1,), (2,), (2, 3), (3, 4)), (0, 1))
    spec = space.to_spec(choice)
    np.testing.assert_array_equal(spec.matrix, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    assert spec.ops == [IN, C3, OUT]


def test_output_reading_only_the_input_projection_and_one_node():
    """Space 1: output <- {0, 1}: node 1 stays, nodes 2..4 and the dummy go."""
    space = get_search_space(1)
    choice = CellChoice((2, 1, 1, 1), ((0,), (0, 1), (0, 1), (0, 1)), (0, 1))
    spec = space.to_spec(choice)
    np.testing.assert_array_equal(spec.matrix, [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    assert spec.ops == [IN, C1, OUT]


def test_choice_nodes_are_always_reachable_from_the_input():
    """Every choice node has a parent among earlier vertices, so pruning only ever removes nodes
    that do not reach the output (plus the parentless dummy of spaces 1 and 2)."""
    for number in (1, 2, 3):
        space = get_search_space(number)
        for parents, output_parents in itertools.islice(space.graphs(), 0, None, 7):
            choice = CellChoice((0,) * space.num_choice_nodes, parents, output_parents)
            spec = space.to_spec(choice)
            matrix = space.adjacency(choice)
            reads = {p for ps in (*parents, output_parents) for p in ps}
            # a node survives iff some path leads from it to the output
            reaching = {6}
            for v in range(5, 0, -1):
                if any(matrix[v, w] for w in reaching):
                    reaching.add(v)
            assert spec.num_vertices == 2 + len(reaching - {6})
            assert reaching - {6} <= reads


def test_to_spec_rejects_choices_outside_the_space():
    space = get_search_space(1)
    with pytest.raises(OutOfDomainError, match="node 3"):
        space.to_spec(CellChoice((0, 0, 0, 0), ((0,), (0, 1), (0,), (0, 1)), (0, 1)))
    with pytest.raises(OutOfDomainError, match="node 2"):
        space.to_spec(CellChoice((0, 0, 0, 0), ((0,), (1,), (0, 1), (0, 1)), (0, 1)))
    with pytest.raises(OutOfDomainError, match="output"):
        space.to_spec(CellChoice((0, 0, 0, 0), ((0,), (0, 1), (0, 1), (0, 1)), (0, 1, 2)))
    with pytest.raises(OutOfDomainError, match="op indices"):
        space.to_spec(CellChoice((0, 0, 3, 0), ((0,), (0, 1), (0, 1), (0, 1)), (0, 1)))
    with pytest.raises(OutOfDomainError, match="op indices"):
        space.to_spec(CellChoice((0, 0, 0), ((0,), (0, 1), (0, 1), (0, 1)), (0, 1)))


# --- invalid alphas, unknown spaces ------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3])
def test_wrong_alpha_shapes_raise_naming_the_shapes(number):
    space = get_search_space(number)
    good = zero_alphas(number)
    bad_sets = [
        good[:-1],  # one input row missing
        [*good, np.zeros((1, 6))],  # one too many
        [good[0].T, *good[1:]],  # op alphas transposed
        [good[0], good[1][0], *good[2:]],  # output alphas 1-d
        zero_alphas(3 if number != 3 else 1),  # another space's alphas
    ]
    for bad in bad_sets:
        with pytest.raises(OutOfDomainError) as info:
            space.discretize(bad)
        message = str(info.value)
        assert str(space.alpha_shapes) in message
        assert str([tuple(np.shape(a)) for a in bad]) in message


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1, -1])
def test_non_finite_alphas_raise(bad_value, where):
    space = get_search_space(2)
    alphas = zero_alphas(2)
    alphas[where][0, 0] = bad_value
    with pytest.raises(OutOfDomainError, match="NaN or inf"):
        space.discretize(alphas)
    with pytest.raises(OutOfDomainError, match="NaN or inf"):
        space.choose([torch.from_numpy(a) for a in alphas])


@pytest.mark.parametrize("name", [4, 0, -1, "four", "3.0"])
def test_unknown_search_space(name):
    with pytest.raises(UnknownNameError, match="spaces 1, 2, 3"):
        get_search_space(name)


@pytest.mark.parametrize("name", [None, 2.5, 1.0, True, "1.5"])
def test_unknown_search_space_of_another_type(name):
    with pytest.raises(UnknownNameError):
        get_search_space(name)


def test_known_search_space_by_string():
    assert get_search_space("2") is get_search_space(2)


# --- best_errors ------------------------------------------------------------------------------


class FakeTable:
    """Stands in for `NASBench101.query_many`: errors for some hashes, NaN for the others."""

    def __init__(self, test: dict[str, float], valid: dict[str, float]):
        self.test, self.valid, self.queries = test, valid, []

    def query_many(self, hashes, epochs: int = 108):
        hashes = list(hashes)
        self.queries.append(hashes)
        return {
            "test_error": np.array([self.test.get(h, np.nan) for h in hashes]),
            "valid_error": np.array([self.valid.get(h, np.nan) for h in hashes]),
            "found": np.array([h in self.test for h in hashes]),
        }


def test_best_errors_is_the_minimum_over_found_models():
    space = get_search_space(1)
    hashes = space.hashes()
    table = FakeTable(
        test={hashes[3]: 0.08, hashes[100]: 0.06, hashes[-1]: 0.07, "0" * 32: 0.001},
        valid={hashes[3]: 0.05, hashes[100]: 0.09, hashes[-1]: 0.07, "0" * 32: 0.001},
    )
    best_test, best_valid = space.best_errors(table)
    assert (best_test, best_valid) == (0.06, 0.05)  # the minima are taken separately; foreign hashes are not asked
    assert table.queries == [hashes]
    assert isinstance(best_test, float) and isinstance(best_valid, float)


# --- real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fragment_keys(shared_dir: Path) -> set[str]:
    keys: set[str] = set()
    files = sorted((shared_dir / "data" / "nb101-fragments").glob("*.json"))
    assert len(files) == 3
    for path in files:
        keys |= set(json.loads(path.read_text())["key"])
    assert len(keys) == 30_001
    return keys


@pytest.mark.parametrize("number", [1, 2, 3])
def test_space_models_found_in_the_real_nasbench101_fragments(number, fragment_keys):
    hashes = get_search_space(number).hashes()
    assert len(set(hashes) & fragment_keys) == SIZES[number][6]


def test_fragment_models_in_a_space_hash_from_their_stored_specs(shared_dir: Path):
    """Models of the 1k file with specs that lie in space 1, 2 or 3: their stored cell hashes to
    `key`, which is how the space's enumeration lists them."""
    data = json.loads((shared_dir / "data" / "nb101-fragments" / "nb101_1k_with_specs.json").read_text())
    in_spaces = set().union(*(get_search_space(i).hashes() for i in (1, 2, 3)))
    checked = 0
    for key, matrix, labels in zip(data["key"], data["adjacency"], data["operations"]):
        if key not in in_spaces:
            continue
        keep = [i for i, label in enumerate(labels) if label != -3]
        matrix = np.array(matrix, dtype=int)[np.ix_(keep, keep)]
        assert ModelSpec.from_labels(matrix, [labels[i] for i in keep]).hash() == key
        checked += 1
    assert checked > 0


def test_near_ties_are_decided_by_a_float32_torch_softmax_as_the_benchmark_does():
    """Issue #11's minimal case: node-4 op alphas within 2e-7 of each other. The benchmark's
    float32 torch softmax picks conv1x1 (the largest alpha); a numpy softmax ties it with
    maxpool and picks maxpool. Float64 alphas are cast to float32 first, as there."""
    space = get_search_space(1)
    for dtype in (np.float32, np.float64):
        alphas = [np.zeros(shape, dtype=dtype) for shape in space.alpha_shapes]
        alphas[0][3] = [-0.9010330438613892, -0.9010332226753235, -0.9010329842567444]
        alphas[1][0] = [0, 0, 0, 0, 1]
        assert space.choose(alphas).ops == (0, 0, 0, 2)
        assert space.discretize(alphas).ops[-2] == C1
    generator = torch.Generator().manual_seed(0)
    rows = torch.tensor([[-0.9010330438613892, -0.9010332226753235, -0.9010329842567444]])
    rows = rows + torch.randn(200, 1, generator=generator) + 1e-7 * torch.randn(200, 3, generator=generator)
    for row in rows:
        alphas = [np.zeros(shape, dtype=np.float32) for shape in space.alpha_shapes]
        alphas[0][0] = row.numpy()
        assert space.choose(alphas).ops[0] == int(torch.softmax(row, dim=-1).numpy().argmax())
