"""The three NAS-Bench-1Shot1 search spaces (SPEC §3): alphas, discretization, enumeration.

A cell has an input (vertex 0), choice nodes 1..n and an output. Each choice node applies one
op from `PRIMITIVES` to the sum of its parents; the output concatenates its parents.
Op alphas are indexed by `PRIMITIVES`; input alphas of node i index candidates 0..i-1
(0 = the cell input); output alphas index 0..n (0 = the cell input).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from benchmarks.cache import CacheDamaged, atomic_write, cache_dir, load_or_build
from benchmarks.errors import OutOfDomainError, UnknownNameError, brief
from benchmarks.nasbench101.graph_hash import graph_hash
from benchmarks.nasbench101.isomorphism import canonical_codes, first_of_each_model
from benchmarks.nasbench101.model_spec import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAX_VERTICES,
    MAXPOOL3X3,
    OP_LABELS,
    OUTPUT,
    PADDING_LABEL,
    ModelSpec,
    _live_vertices,
)

PRIMITIVES = (MAXPOOL3X3, CONV3X3, CONV1X1)
"""Op order of the one-shot model and of the op alphas (index 0 = maxpool3x3)."""

ENUMERATION_VERSION = 1

DUMMY_OP = CONV1X1
"""Op of the unconnected vertex that pads 4-choice-node cells to 7 vertices (pruned away)."""


@dataclass(frozen=True)
class CellChoice:
    """One discrete architecture of a space, as indices (host-side, no tensors).

    ops: op index into `PRIMITIVES` per choice node (length n);
    parents: sorted parents per choice node (length n, fixed parents included);
    output_parents: sorted parents of the output (0 = cell input, i = choice node i).
    """

    ops: tuple[int, ...]
    parents: tuple[tuple[int, ...], ...]
    output_parents: tuple[int, ...]


def _load_models(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A space's cached model list (see `SearchSpace._models`); `CacheDamaged` if it is unusable."""
    try:
        with np.load(path, allow_pickle=False) as cached:
            matrices, labels, hashes = cached["matrices"], cached["labels"], cached["hashes"]
    except Exception as err:  # a damaged .npz fails in many ways (BadZipFile, EOFError, KeyError...)
        raise CacheDamaged(brief(err)) from None
    shapes = (matrices.shape[1:], labels.shape[1:], len(labels), len(hashes), hashes.dtype)
    if shapes != ((MAX_VERTICES, MAX_VERTICES), (MAX_VERTICES,), len(matrices), len(matrices), np.dtype("S32")):
        raise CacheDamaged(f"unexpected arrays {shapes}")
    return matrices, labels, hashes


def _softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis as the benchmark computes it: the alphas cast to float32 and a
    float32 torch softmax on the CPU (nasbench_analysis/eval_darts_one_shot_model_in_nasbench.py:
    `F.softmax(torch.Tensor(weights), axis)`), so near-ties (alphas within ~1e-7) are decided as
    there; a float64 or numpy softmax rounds differently. Returns float32."""
    import torch  # here, so that the spaces load without torch (the CLI's listing)

    return torch.softmax(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), dim=-1).numpy()


def _top_k(weights: np.ndarray, k: int) -> tuple[int, ...]:
    """The k largest entries of a (1, m) row, ties broken as NAS-Bench-1Shot1 does (argpartition)."""
    return tuple(sorted(int(i) for i in np.argpartition(weights[0], -k)[-k:]))


def _as_numpy(alpha) -> np.ndarray:
    if hasattr(alpha, "detach"):
        alpha = alpha.detach().cpu().numpy()
    return np.asarray(alpha)


@dataclass(frozen=True)
class SearchSpace:
    """A NAS-Bench-1Shot1 search space.

    num_parents[i - 1]: parents of choice node i; fixed_parents: nodes whose parents are not
    searched; reference_best_*: best mean errors of the space per the NAS-Bench-1Shot1 code.
    """

    number: int
    num_choice_nodes: int
    num_parents: tuple[int, ...]
    num_output_parents: int
    fixed_parents: Mapping[int, tuple[int, ...]]
    reference_best_test_error: float
    reference_best_valid_error: float

    @property
    def choice_input_nodes(self) -> tuple[int, ...]:
        """Choice nodes whose parents are searched, in alpha order."""
        return tuple(i for i in range(1, self.num_choice_nodes + 1) if i not in self.fixed_parents)

    @property
    def alpha_shapes(self) -> list[tuple[int, int]]:
        """Shapes of the architecture parameters: op alphas, output alphas, input alphas per node."""
        n = self.num_choice_nodes
        return [(n, len(PRIMITIVES)), (1, n + 1), *[(1, node) for node in self.choice_input_nodes]]

    @property
    def num_alphas(self) -> int:
        return sum(rows * cols for rows, cols in self.alpha_shapes)

    def parent_choices(self, node: int) -> list[tuple[int, ...]]:
        """All parent sets node `node` (1..n, or n+1 for the output) can take."""
        if node in self.fixed_parents:
            return [self.fixed_parents[node]]
        k = self.num_output_parents if node == self.num_choice_nodes + 1 else self.num_parents[node - 1]
        return list(itertools.combinations(range(node), k))

    def adjacency(self, choice: CellChoice) -> np.ndarray:
        """(7, 7) NAS-Bench-101 adjacency of a choice, before pruning (dummy vertex included)."""
        self._check_choice(choice)
        matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        for node, parents in enumerate(choice.parents, start=1):
            matrix[list(parents), node] = 1
        matrix[list(choice.output_parents), MAX_VERTICES - 1] = 1
        return matrix

    def op_names(self, choice: CellChoice) -> list[str]:
        """The 7 op names of a choice, before pruning."""
        padding = [DUMMY_OP] * (MAX_VERTICES - 2 - self.num_choice_nodes)
        return [INPUT, *(PRIMITIVES[i] for i in choice.ops), *padding, OUTPUT]

    def to_spec(self, choice: CellChoice) -> ModelSpec:
        """The NAS-Bench-101 model of a discrete choice (pruned)."""
        return ModelSpec(self.adjacency(choice), self.op_names(choice))

    def choose(self, alphas: Sequence) -> CellChoice:
        """The discrete choice of a set of alphas, by the benchmark's rule (SPEC §3).

        alphas: arrays or tensors with shapes `alpha_shapes` (op, output, input alphas).
        """
        arrays = [_as_numpy(a) for a in alphas]
        shapes = [tuple(a.shape) for a in arrays]
        if shapes != self.alpha_shapes:
            raise OutOfDomainError(f"space {self.number} expects alphas of shapes {self.alpha_shapes}, got {shapes}")
        if not all(np.isfinite(a).all() for a in arrays):
            raise OutOfDomainError(f"alphas contain NaN or inf: cannot discretize for space {self.number}")
        op_alphas, output_alphas, *input_alphas = arrays
        ops = tuple(int(i) for i in _softmax(op_alphas).argmax(axis=-1))
        searched = dict(zip(self.choice_input_nodes, input_alphas))
        parents = tuple(
            self.fixed_parents[node]
            if node in self.fixed_parents
            else _top_k(_softmax(searched[node]), self.num_parents[node - 1])
            for node in range(1, self.num_choice_nodes + 1)
        )
        return CellChoice(ops, parents, _top_k(_softmax(output_alphas), self.num_output_parents))

    def discretize(self, alphas: Sequence) -> ModelSpec:
        """The NAS-Bench-101 model the benchmark assigns to a set of alphas."""
        return self.to_spec(self.choose(alphas))

    def graphs(self) -> Iterator[tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]]:
        """All (parents per choice node, output parents) combinations of the space."""
        per_node = [self.parent_choices(node) for node in range(1, self.num_choice_nodes + 2)]
        for combo in itertools.product(*per_node):
            yield tuple(combo[:-1]), combo[-1]

    def enumerate(self) -> Iterator[ModelSpec]:
        """Every distinct NAS-Bench-101 model the space can express (one spec per hash)."""
        matrices, labels, _ = self.model_arrays()
        for matrix, row in zip(matrices, labels):
            size = int((row != PADDING_LABEL).sum())
            yield ModelSpec.from_labels(matrix[:size, :size], row[:size])

    def model_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct models without building a `ModelSpec` each, in `enumerate` order: pruned
        adjacency (N, 7, 7) int8 (zero-padded), op labels (N, 7) int8 (`OP_LABELS`, padded with
        `PADDING_LABEL`), hashes (N,) 32-byte strings; read-only views of the space's own."""
        views = tuple(array.view() for array in self._models)
        for view in views:
            view.flags.writeable = False
        return views

    def hashes(self) -> list[str]:
        """Hashes of all distinct models of the space (`enumerate` order)."""
        return self._models[2].astype(str).tolist()

    @property
    def num_models(self) -> int:
        return len(self._models[2])

    @cached_property
    def _models(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(matrices (N, 7, 7) int8, labels (N, 7) int8 padded with -3, hashes (N,) S32).

        Computed once per machine (about 10 s for space 3, one hash per model) and kept in the cache folder.
        """
        path = cache_dir() / f"nasbench1shot1-space{self.number}-models-v{ENUMERATION_VERSION}.npz"

        def build(target: Path) -> None:
            matrices, labels, hashes = self._enumerate_models()

            def write(tmp: Path) -> None:
                with open(tmp, "wb") as f:
                    np.savez(f, matrices=matrices, labels=labels, hashes=hashes)

            atomic_write(target, write)

        return load_or_build(path, _load_models, build, f"the search space {self.number} model list")

    def _enumerate_models(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct models in the order of their first appearance among the space's graphs
        (`graphs` order, pruned, one per isomorphism class) and their labellings (product order);
        a labelling that an automorphism of its graph maps onto an earlier one is not hashed."""
        pruned_graphs: dict[tuple[int, int], np.ndarray] = {}
        for parents, output_parents in self.graphs():
            matrix = self.adjacency(CellChoice((0,) * self.num_choice_nodes, parents, output_parents))
            live = _live_vertices(matrix)
            pruned = matrix[np.ix_(live, live)]
            pruned_graphs.setdefault((len(pruned), int(canonical_codes(pruned[None])[0])), pruned)
        models: dict[str, tuple[np.ndarray, list[int]]] = {}
        op_labels = [OP_LABELS[op] for op in PRIMITIVES]
        for pruned in pruned_graphs.values():
            for labelling in first_of_each_model(pruned, len(PRIMITIVES)).tolist():
                labels = [OP_LABELS[INPUT], *(op_labels[i] for i in labelling), OP_LABELS[OUTPUT]]
                models.setdefault(graph_hash(pruned, labels), (pruned, labels))
        matrices = np.zeros((len(models), MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        labels = np.full((len(models), MAX_VERTICES), PADDING_LABEL, dtype=np.int8)
        for row, (matrix, cell_labels) in enumerate(models.values()):
            size = len(cell_labels)
            matrices[row, :size, :size] = matrix
            labels[row, :size] = cell_labels
        return matrices, labels, np.array(list(models), dtype="S32")

    def best_errors(self, table) -> tuple[float, float]:
        """(best mean test error, best mean validation error) over the space's models in `table`.

        table: a `NASBench101`; models missing from it are skipped.
        """
        stats = table.query_many(self.hashes())
        return float(np.nanmin(stats["test_error"])), float(np.nanmin(stats["valid_error"]))

    def _check_choice(self, choice: CellChoice) -> None:
        n = self.num_choice_nodes
        if len(choice.ops) != n or len(choice.parents) != n or any(not 0 <= o < len(PRIMITIVES) for o in choice.ops):
            raise OutOfDomainError(
                f"space {self.number} needs {n} op indices in 0..2 and {n} parent sets, got {choice}"
            )
        for node, parents in enumerate((*choice.parents, choice.output_parents), start=1):
            if tuple(sorted(parents)) not in self.parent_choices(node):
                where = "output" if node == n + 1 else f"node {node}"
                raise OutOfDomainError(
                    f"space {self.number}: parents {parents} of {where} are not one of {self.parent_choices(node)}"
                )


SEARCH_SPACES = {
    1: SearchSpace(1, 4, (1, 2, 2, 2), 2, {1: (0,), 2: (0, 1)}, 0.05448716878890991, 0.049278855323791504),
    2: SearchSpace(2, 4, (1, 1, 2, 2), 3, {1: (0,)}, 0.057592153549194336, 0.05158253014087677),
    3: SearchSpace(3, 5, (1, 1, 1, 2, 2), 2, {1: (0,)}, 0.05338541666666663, 0.04847756028175354),
}


def get_search_space(number: int | str) -> SearchSpace:
    """Search space 1, 2 or 3 of NAS-Bench-1Shot1 (an integer, or its digits as a string)."""
    key = None
    if isinstance(number, str) and number.strip().isdigit():
        key = int(number)
    elif not isinstance(number, bool):
        with contextlib.suppress(TypeError):
            key = operator.index(number)
    if key not in SEARCH_SPACES:
        raise UnknownNameError(f"unknown search space {number!r}; NAS-Bench-1Shot1 has spaces 1, 2, 3")
    return SEARCH_SPACES[key]
