"""The one-shot model (SPEC §4): one-hot mixing equals a stand-alone network of the discrete cell,
dense and sparse paths agree, gradients reach the alphas, partial channels, parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import CellChoice, Mixing, OneShotModel, get_search_space
from benchmarks.nasbench1shot1.model import Cell
from benchmarks.nasbench1shot1.ops import ConvBnRelu, NodeOps, channel_shuffle, max_pool

CELLS = 3


def random_choices(space, count: int, seed: int) -> list[CellChoice]:
    """`count` random architectures of `space`, drawn node by node from its parent choices."""
    rng = np.random.default_rng(seed)
    n = space.num_choice_nodes
    choices = []
    for _ in range(count):
        ops = tuple(int(o) for o in rng.integers(0, 3, n))
        options = [space.parent_choices(node) for node in range(1, n + 2)]
        picked = [options_[rng.integers(len(options_))] for options_ in options]
        choices.append(CellChoice(ops, tuple(picked[:-1]), picked[-1]))
    return choices


def architectures(number: int) -> list[CellChoice]:
    """A few architectures per space: all-zero alphas' choice, one that prunes nodes, two random."""
    space = get_search_space(number)
    zero = space.choose([np.zeros(shape) for shape in space.alpha_shapes])
    pruning = {
        1: CellChoice((1, 2, 0, 2), ((0,), (0, 1), (0, 2), (0, 1)), (0, 4)),
        2: CellChoice((0, 1, 2, 0), ((0,), (0,), (1, 2), (0, 2)), (0, 2, 4)),
        3: CellChoice((2, 1, 0, 1, 2), ((0,), (1,), (0,), (1, 3), (0, 4)), (1, 5)),
    }[number]
    return [zero, pruning, *random_choices(space, 2, seed=number)]


def tiny_model(number: int, channels: int = 3, seed: int = 0, **options) -> OneShotModel:
    torch.manual_seed(seed)
    return OneShotModel(get_search_space(number), channels=channels, cells=CELLS, **options).double()


def stand_alone_forward(model: OneShotModel, choice: CellChoice, x: Tensor, channels: int) -> Tensor:
    """The discrete network of `choice`, evaluated node by node with the supernet's own modules.

    Written from SPEC §4, independently of `Cell.forward`: resolution halves before cells
    cells // 3 and 2 * cells // 3, where C doubles.
    """
    num_cells = len(model.cells)
    n = len(choice.ops)
    s = model.stem(x)
    c = channels
    for i, cell in enumerate(model.cells):
        if i in (num_cells // 3, 2 * num_cells // 3):
            s = model.downsample(s)
            c *= 2
        pre = cell.preprocess(s)
        assert pre.shape[1] == 2 * n * c
        projections = [pre[:, k * c : (k + 1) * c] for k in range(n)]
        output_projection = pre[:, n * c :]
        outputs: dict[int, Tensor] = {}
        for node in range(1, n + 1):
            node_input = None
            for parent in choice.parents[node - 1]:
                term = projections[node - 1] if parent == 0 else outputs[parent]
                node_input = term if node_input is None else node_input + term
            outputs[node] = cell.nodes.single(node_input, node - 1, choice.ops[node - 1])
        parts = [outputs[k] if k in choice.output_parents else torch.zeros_like(outputs[k]) for k in range(1, n + 1)]
        s = torch.cat(parts, dim=1)
        if 0 in choice.output_parents:
            s = s + output_projection
    s = model.postprocess(s)
    return model.classifier(s.mean(dim=(2, 3)))


def images(batch: int = 4, size: int = 8, seed: int = 1, dtype=torch.float64) -> Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- one-hot mixing = the discrete network -------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3])
def test_one_hot_mixing_equals_the_stand_alone_network(number):
    space = get_search_space(number)
    channels = {1: 2, 2: 3, 3: 4}[number]
    model = tiny_model(number, channels=channels)
    x = images(size={1: 8, 2: 16, 3: 8}[number])
    for choice in architectures(number):
        mixing = Mixing.from_choice(space, choice)
        assert mixing.op_choice == choice.ops
        model.train()
        expected = stand_alone_forward(model, choice, x, channels)
        got = model(x, mixing)
        assert got.dtype == torch.float64 and got.shape == (4, 10)
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
        model.eval()  # running statistics now hold the last batch's (momentum 0.997)
        expected = stand_alone_forward(model, choice, x, channels)
        torch.testing.assert_close(model(x, mixing), expected, atol=1e-10, rtol=0)


def test_adopt_batch_statistics_gives_the_used_layers_this_batchs_statistics():
    space = get_search_space(1)
    model = tiny_model(1, channels=2, bn_momentum=0.003)
    choice = architectures(1)[-1]  # node 1 runs op 2 (conv1x1): its conv3x3 (op 1) is unused
    assert choice.ops[0] == 2
    mixing = Mixing.from_choice(space, choice)
    model(images(seed=5), mixing)  # running statistics now belong to another batch
    x = images(seed=6)
    model.train()
    train_logits = model(x, mixing)
    model.eval()
    stale_error = (model(x, mixing) - train_logits).abs().max()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = []
    hook = model.postprocess[2].register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    model.adopt_batch_statistics(x, mixing)
    hook.remove()
    assert not model.training
    last = model.postprocess[2]
    assert last.momentum == 0.1 and model.stem[1].momentum == 0.003
    torch.testing.assert_close(last.running_mean, inputs[0].mean(dim=(0, 2, 3)), atol=1e-12, rtol=0)
    torch.testing.assert_close(last.running_var, inputs[0].var(dim=(0, 2, 3)), atol=1e-12, rtol=0)
    unused = "cells.0.nodes.bns.0.running_mean"  # its first half: node 1's conv3x3
    assert torch.equal(model.state_dict()[unused][:2], before[unused][:2])
    assert not torch.equal(model.state_dict()[unused][2:], before[unused][2:])
    assert not torch.equal(model.stem[1].running_mean, before["stem.1.running_mean"])
    # eval mode now differs from train mode only by the unbiased variance of small batches
    assert (model(x, mixing) - train_logits).abs().max() < stale_error / 5


@pytest.mark.parametrize("number", [1, 2, 3])
def test_different_architectures_give_different_outputs(number):
    """The comparison above is not vacuous: the architectures' outputs differ from each other."""
    space = get_search_space(number)
    model = tiny_model(number).eval()
    x = images()
    outputs = [model(x, Mixing.from_choice(space, choice)) for choice in architectures(number)]
    for a in range(len(outputs)):
        for b in range(a):
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-6)


@pytest.mark.parametrize("number", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
def test_dense_path_equals_sparse_path_for_one_hot_weights(number, train):
    space = get_search_space(number)
    model = tiny_model(number)
    x = images()
    model.train()
    model(x, Mixing.from_choice(space, architectures(number)[0]))  # fill the running statistics
    model.train(train)
    for choice in architectures(number):
        sparse = Mixing.from_choice(space, choice)
        dense = Mixing.from_weights(sparse.weights())
        assert dense.op_choice is None
        torch.testing.assert_close(model(x, dense), model(x, sparse), atol=1e-10, rtol=0)


def test_mixing_from_choice_puts_ones_at_the_chosen_entries():
    space = get_search_space(3)
    choice = CellChoice((2, 1, 0, 1, 2), ((0,), (1,), (0,), (1, 3), (0, 4)), (1, 5))
    mixing = Mixing.from_choice(space, choice)
    assert [tuple(w.shape) for w in mixing.weights()] == space.alpha_shapes
    expected = [np.zeros(shape) for shape in space.alpha_shapes]
    expected[0][np.arange(5), [2, 1, 0, 1, 2]] = 1
    expected[1][0, [1, 5]] = 1
    for row, parents in zip(expected[2:], [(1,), (0,), (1, 3), (0, 4)]):  # nodes 2..5
        row[0, list(parents)] = 1
    for weight, want in zip(mixing.weights(), expected):
        np.testing.assert_array_equal(weight.numpy(), want)
    # the choice of its one-hot weights is the choice itself
    assert space.choose(mixing.weights()) == choice


# --- gradients ------------------------------------------------------------------------------------


def random_alphas(space, seed: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_() for shape in space.alpha_shapes
    ]


@pytest.mark.parametrize("number", [1, 2, 3])
def test_gradients_reach_every_alpha_under_softmax_weights(number):
    space = get_search_space(number)
    model = tiny_model(number).train()
    alphas = random_alphas(space, seed=number)
    mixing = Mixing.from_weights([F.softmax(a, dim=-1) for a in alphas])
    labels = torch.arange(4) % 10
    F.cross_entropy(model(images(), mixing), labels).backward()
    for alpha in alphas:
        assert alpha.grad is not None and alpha.grad.shape == alpha.shape
        assert (alpha.grad != 0).all(), alpha.grad


@pytest.mark.parametrize("number", [1, 3])
def test_straight_through_op_weights_pass_gradients_to_ops_that_did_not_run(number, monkeypatch):
    """GDAS/NASP style: one-hot op weights + (p - p.detach()), only the chosen op runs. The other
    ops' weights enter as constants, so d loss / d w[node, j] for a skipped op j is the sum of the
    node's output gradient, and w[node, chosen] gets <output gradient, op output>."""
    space = get_search_space(number)
    model = tiny_model(number).train()
    alphas = random_alphas(space, seed=10 + number)
    probs = F.softmax(alphas[0], dim=-1)
    chosen = probs.argmax(dim=-1)
    op_weights = F.one_hot(chosen, 3).to(probs.dtype) + (probs - probs.detach())
    op_weights.retain_grad()
    mixing = Mixing.from_weights([op_weights, *(F.softmax(a, dim=-1) for a in alphas[1:])], op_choice=chosen.tolist())
    torch.testing.assert_close(mixing.ops.detach(), F.one_hot(chosen, 3).double())

    node_outputs: list[tuple[int, Tensor]] = []
    ran = set()
    mixed_op, single = Cell._mixed_op, NodeOps.single

    def keep_output(cell, x, node, *args):
        output = mixed_op(cell, x, node, *args)
        output.retain_grad()
        node_outputs.append((node, output))
        return output

    def note_run(nodes, x, node, op):
        ran.add((node, op))
        return single(nodes, x, node, op)

    monkeypatch.setattr(Cell, "_mixed_op", keep_output)
    monkeypatch.setattr(NodeOps, "single", note_run)
    F.cross_entropy(model(images(), mixing), torch.arange(4) % 10).backward()

    assert ran == {(i, int(op)) for i, op in enumerate(chosen)}  # only the chosen ops ran
    assert (alphas[0].grad != 0).all(), alphas[0].grad
    for i, op in enumerate(chosen.tolist()):
        outputs = [out for index, out in node_outputs if index == i]
        assert len(outputs) == CELLS
        skipped_grad = sum(out.grad.sum() for out in outputs)
        chosen_grad = sum((out.grad * out).sum() for out in outputs)
        for j in range(3):
            want = chosen_grad if j == op else skipped_grad
            torch.testing.assert_close(op_weights.grad[i, j], want, atol=1e-12, rtol=1e-9)
            assert op_weights.grad[i, j] != 0


def test_mixed_op_with_a_choice_adds_the_other_weights_as_constants():
    torch.manual_seed(0)
    cell = Cell(get_search_space(1), 4, 4, bn_momentum=0.1, partial_channels=1).double().train()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64, requires_grad=True)
    out = cell._mixed_op(x, 0, weights, 1, None)
    torch.testing.assert_close(out, 0.5 * cell.nodes.single(x, 0, 1) + 0.5, atol=1e-12, rtol=0)
    dense = cell._mixed_op(x, 0, weights, None, cell.nodes.fused_kernels()[0])
    ops = [max_pool(x), cell.nodes.single(x, 0, 1), cell.nodes.single(x, 0, 2)]
    torch.testing.assert_close(dense, sum(w * o for w, o in zip(weights, ops)), atol=1e-12, rtol=0)


# --- partial channels ----------------------------------------------------------------------------


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 1).flatten().tolist() == list(range(6))
    assert channel_shuffle(x, 6).flatten().tolist() == list(range(6))
    y = torch.arange(8.0).view(1, 8, 1, 1).expand(2, 8, 3, 3)
    assert channel_shuffle(y, 4)[1, :, 2, 1].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_partial_channel_mixed_op_runs_a_quarter_and_shuffles_the_rest_through():
    torch.manual_seed(0)
    cell = Cell(get_search_space(1), 8, 8, bn_momentum=0.1, partial_channels=4).double().train()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    out = cell._mixed_op(x, 0, weights, None, cell.nodes.fused_kernels()[0])
    assert out.shape == x.shape
    part = x[:, :2]
    mixed = sum(
        w * o for w, o in zip(weights, [max_pool(part), cell.nodes.single(part, 0, 1), cell.nodes.single(part, 0, 2)])
    )
    # concat [mixed (2 channels), x[:, 2:] (6)] shuffled in 4 groups of 2 -> order [0, 2, 4, 6, 1, 3, 5, 7]
    torch.testing.assert_close(out[:, [0, 4]], mixed, atol=1e-12, rtol=0)
    torch.testing.assert_close(out[:, [1, 2, 3, 5, 6, 7]], x[:, [2, 4, 6, 3, 5, 7]], atol=0, rtol=0)
    with pytest.raises(ValueError, match="partial-channel"):
        Cell(get_search_space(1), 6, 6, bn_momentum=0.1, partial_channels=4)


@pytest.mark.parametrize("number", [1, 3])
def test_partial_channels_each_op_sees_a_quarter_of_the_channels(number, monkeypatch):
    space = get_search_space(number)
    model = tiny_model(number, channels=8, partial_channels=4).train()
    seen: list[tuple[int, int, int]] = []  # (cell channels, op input channels, channels per op output)
    shapes: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
    mixed_op, convolutions, single = Cell._mixed_op, NodeOps.convolutions, NodeOps.single

    def record_mixed(cell, x, *args):
        out = mixed_op(cell, x, *args)
        shapes.append((cell.channels, tuple(x.shape), tuple(out.shape)))
        return out

    def record_convolutions(nodes, x, *args):
        out = convolutions(nodes, x, *args)  # both conv ops: 2 * C / 4 channels
        seen.append((4 * nodes.channels, x.shape[1], out.shape[1] // 2))
        return out

    def record_single(nodes, x, *args):
        out = single(nodes, x, *args)
        seen.append((4 * nodes.channels, x.shape[1], out.shape[1]))
        return out

    monkeypatch.setattr(Cell, "_mixed_op", record_mixed)
    monkeypatch.setattr(NodeOps, "convolutions", record_convolutions)
    monkeypatch.setattr(NodeOps, "single", record_single)
    alphas = random_alphas(space, seed=0)
    out = model(images(), Mixing.from_weights([F.softmax(a, dim=-1) for a in alphas]))
    assert out.shape == (4, 10)
    n = space.num_choice_nodes
    assert [c for c, _, _ in shapes] == [8] * n + [16] * n + [32] * n
    assert len(seen) == CELLS * n
    assert all(seen_in == seen_out == channels // 4 for channels, seen_in, seen_out in seen)
    assert all(shape_in == shape_out and shape_in[1] == channels for channels, shape_in, shape_out in shapes)
    # the sparse path too
    seen.clear()
    model(images(), Mixing.from_choice(space, architectures(number)[1]))
    assert len(seen) == CELLS * n
    assert all(i == o == c // 4 for c, i, o in seen)


# --- parameter counts ----------------------------------------------------------------------------

# (space, partial_channels) -> trainable parameters at the paper's size (C = 16, 9 cells)
PARAMETERS = {
    (1, 1): 1_101_402,
    (2, 1): 1_101_402,
    (3, 1): 1_509_594,
    (1, 4): 492_570,
    (2, 4): 492_570,
    (3, 4): 748_554,
}


def parameters_by_formula(n: int, channels: int = 16, cells: int = 9, partial: int = 1, classes: int = 10) -> int:
    """SPEC §4 counted by hand: convs have no bias, BN(affine) has 2 per channel, the
    postprocess BN has none (affine=False), max pools none."""
    total = 3 * channels * 9 + 2 * channels  # stem conv3x3 + BN
    c_prev = c = channels
    for i in range(cells):
        if i in (cells // 3, 2 * cells // 3):
            c *= 2
        c_in = channels if i == 0 else n * c_prev
        total += c_in * 2 * n * c + 2 * (2 * n * c)  # preprocess: n projections to C + one to n*C
        op_c = c // partial
        total += n * ((op_c * op_c * 9 + 2 * op_c) + (op_c * op_c + 2 * op_c))  # conv3x3 + conv1x1 per node
        c_prev = c
    total += n * c * c  # postprocess 1x1 conv, n*C -> C
    total += c * classes + classes  # classifier
    return total


@pytest.mark.parametrize(("number", "partial"), sorted(PARAMETERS))
def test_parameter_counts_at_the_papers_size(number, partial):
    model = OneShotModel(get_search_space(number), channels=16, cells=9, partial_channels=partial)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMETERS[number, partial]
    n = get_search_space(number).num_choice_nodes
    assert parameters_by_formula(n, partial=partial) == PARAMETERS[number, partial]


def test_parameter_formula_worked_out_for_space_1():
    """The formula above, spelled out as numbers for space 1 (n = 4, C = 16, 32, 64)."""
    stem = 3 * 16 * 9 + 32  # 464
    pre = (
        16 * 128
        + 256
        + 2 * (64 * 128 + 256)
        + 64 * 256
        + 512
        + 2 * (128 * 256 + 512)
        + 128 * 512
        + 1024
        + 2 * (256 * 512 + 1024)
    )
    ops = 3 * 4 * (16 * 16 * 10 + 64) + 3 * 4 * (32 * 32 * 10 + 128) + 3 * 4 * (64 * 64 * 10 + 256)
    tail = 4 * 64 * 64 + 64 * 10 + 10
    assert stem + pre + ops + tail == PARAMETERS[1, 1] == 1_101_402


def test_reference_layout_of_the_paper_model():
    model = OneShotModel(get_search_space(1))
    assert model.reductions == {3, 6}
    assert [cell.channels for cell in model.cells] == [16] * 3 + [32] * 3 + [64] * 3
    assert isinstance(model.stem, ConvBnRelu) and model.stem[0].kernel_size == (3, 3)
    assert model.downsample.kernel_size == 2 and model.downsample.stride == 2 and model.downsample.padding == 1
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.eps == 1e-5 for bn in bns)
    assert all(bn.momentum == 0.997 for bn in bns if bn.affine)
    assert not model.postprocess[2].affine
    # 32 -> 17 -> 9
    sizes = []
    model.cells[3].register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[-1]))
    model.cells[6].register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[-1]))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32), Mixing.from_choice(model.space, architectures(1)[0]))
    assert sizes == [17, 9]


# --- dtype and device ----------------------------------------------------------------------------


def test_float32_by_default():
    space = get_search_space(2)
    model = OneShotModel(space, channels=4, cells=CELLS)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = images(dtype=torch.float32)
    assert model(x, Mixing.from_choice(space, architectures(2)[1])).dtype == torch.float32
    alphas = [1e-3 * torch.randn(shape) for shape in space.alpha_shapes]
    assert model(x, Mixing.from_weights([F.softmax(a, dim=-1) for a in alphas])).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("number", [1, 2, 3])
def test_builds_and_runs_on_cuda(number):
    space = get_search_space(number)
    torch.manual_seed(0)
    cpu = OneShotModel(space, channels=8, cells=CELLS).eval()
    gpu = OneShotModel(space, channels=8, cells=CELLS).cuda().eval()
    gpu.load_state_dict(cpu.state_dict())
    x = images(size=16, dtype=torch.float32)
    choice = architectures(number)[1]
    out = gpu(x.cuda(), Mixing.from_choice(space, choice, device="cuda"))
    assert out.device.type == "cuda" and out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), cpu(x, Mixing.from_choice(space, choice)), atol=1e-4, rtol=1e-4)
    alphas = [(1e-3 * torch.randn(shape, device="cuda")).requires_grad_() for shape in space.alpha_shapes]
    gpu.train()
    loss = F.cross_entropy(
        gpu(x.cuda(), Mixing.from_weights([F.softmax(a, dim=-1) for a in alphas])), torch.arange(4, device="cuda")
    )
    loss.backward()
    assert all(a.grad is not None and a.grad.isfinite().all() for a in alphas)
