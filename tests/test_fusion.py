"""Every fusion of the one-shot model computes what the plain computation computes (float64, 1e-10).

The plain computation is `Network` below: the reference code's one-shot model (NAS-Bench-1Shot1's
`optimizers/darts/model_search.py`: one module per op, one kernel per term, its module names, so
its state dict has the reference layout), taking the harness's `Mixing`, with partial channels
(PC-DARTS) and DARTS's drop_path per choice node as options. Its parameters reach `OneShotModel`
through `from_reference_state_dict`, so these tests also cover that mapping.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.nasbench1shot1 import CellChoice, Mixing, OneShotModel, SearchSpace, get_search_space
from benchmarks.nasbench1shot1.ops import channel_shuffle
from benchmarks.nasbench1shot1.reference import BN_EPS, REFERENCE_BN_MOMENTUM
from benchmarks.nasbench1shot1.reference_layout import from_reference_state_dict
from harness.bench import OpCounter
from harness.hessian import batch_statistics_only, hessian

TOLERANCE = 1e-10


# --- the plain computation, in the reference layout ------------------------------------------------


class RefConvBnRelu(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=REFERENCE_BN_MOMENTUM),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class RefConvOp(nn.Module):
    """The reference's Conv3x3BnRelu / Conv1x1BnRelu: a module whose `.op` is a ConvBnRelu."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.op = RefConvBnRelu(channels, channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS, affine=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class MixedOp(nn.Module):
    def __init__(self, channels: int, partial_channels: int):
        super().__init__()
        self.k = partial_channels
        c = channels // partial_channels
        self._ops = nn.ModuleList([nn.MaxPool2d(3, stride=1, padding=1), RefConvOp(c, 3), RefConvOp(c, 1)])

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        bypass = None
        if self.k > 1:
            split = x.shape[1] // self.k
            x, bypass = x[:, :split], x[:, split:]
        out = sum(w * op(x) for w, op in zip(weights, self._ops))
        if bypass is not None:
            out = channel_shuffle(torch.cat([out, bypass], dim=1), self.k)
        return out


class ChoiceBlock(nn.Module):
    def __init__(self, channels: int, partial_channels: int):
        super().__init__()
        self.mixed_op = MixedOp(channels, partial_channels)

    def forward(self, inputs: list[Tensor], input_weights: Tensor | None, weights: Tensor) -> Tensor:
        if input_weights is not None:
            inputs = [w * t for w, t in zip(input_weights[0], inputs)]
        return self.mixed_op(sum(inputs), weights)


class Cell(nn.Module):
    def __init__(self, space: SearchSpace, c_in: int, channels: int, partial_channels: int):
        super().__init__()
        self.space = space
        n = space.num_choice_nodes
        self._choice_blocks = nn.ModuleList(ChoiceBlock(channels, partial_channels) for _ in range(n))
        self._input_projections = nn.ModuleList(RefConvBnRelu(c_in, channels, 1) for _ in range(n))
        self._input_projections.append(RefConvBnRelu(c_in, channels * n, 1))

    def forward(self, s0: Tensor, mixing: Mixing, drop_path_prob: float) -> Tensor:
        states: list[Tensor] = []
        searched = {node: i for i, node in enumerate(self.space.choice_input_nodes)}
        for i, block in enumerate(self._choice_blocks):
            node = i + 1
            candidates = [self._input_projections[i](s0), *states]
            if node in self.space.fixed_parents:
                inputs, weights = [candidates[p] for p in self.space.fixed_parents[node]], None
            else:
                inputs, weights = candidates, mixing.inputs[searched[node]]
            state = block(inputs, weights, mixing.ops[i])
            if drop_path_prob > 0:  # DARTS's drop_path
                keep = 1.0 - drop_path_prob
                mask = torch.empty(state.shape[0], 1, 1, 1, dtype=state.dtype, device=state.device).bernoulli_(keep)
                state = state / keep * mask
            states.append(state)
        weighted = [w * t for w, t in zip(mixing.output[0][1:], states)]
        return mixing.output[0][0] * self._input_projections[-1](s0) + torch.cat(weighted, dim=1)


class Network(nn.Module):
    def __init__(self, space: SearchSpace, channels: int, cells: int, partial_channels: int = 1):
        super().__init__()
        n = space.num_choice_nodes
        self._layers = cells
        self.drop_path_prob = 0.0
        self.stem = RefConvBnRelu(3, channels, 3)
        self.cells = nn.ModuleList()
        c_prev = c_curr = channels
        for i in range(cells):
            if i in (cells // 3, 2 * cells // 3):
                c_curr *= 2
            self.cells.append(Cell(space, c_prev if i == 0 else c_prev * n, c_curr, partial_channels))
            c_prev = c_curr
        self.postprocess = ReLUConvBN(c_prev * n, c_curr)
        self.classifier = nn.Linear(c_prev, 10)

    def forward(self, x: Tensor, mixing: Mixing | list[Mixing]) -> Tensor:
        """One mixing for all cells, or one per cell (as the reference's GDASNetwork samples)."""
        mixings = mixing if isinstance(mixing, list) else [mixing] * len(self.cells)
        s0 = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in (self._layers // 3, 2 * self._layers // 3):
                s0 = nn.MaxPool2d(kernel_size=2, stride=2, padding=1)(s0)
            s0 = cell(s0, mixings[i], self.drop_path_prob if self.training else 0.0)
        s0 = self.postprocess(s0)
        return self.classifier(s0.view(*s0.shape[:2], -1).mean(-1))


# --- the fused model against it ---------------------------------------------------------------------


def pair(number: int, channels: int = 4, cells: int = 3, partial_channels: int = 1, seed: int = 0):
    """The reference network with random parameters and statistics, and the fused model loaded
    from its state dict (float64)."""
    space = get_search_space(number)
    torch.manual_seed(seed)
    reference = Network(space, channels, cells, partial_channels).double()
    with torch.no_grad():
        for name, tensor in reference.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith(("running_mean", "bias")) or (name.endswith("weight") and tensor.dim() == 1):
                tensor.uniform_(-0.5, 1.5)
    model = OneShotModel(space, channels=channels, cells=cells, partial_channels=partial_channels).double()
    model.load_state_dict(from_reference_state_dict(reference.state_dict()), strict=True)
    return space, reference, model


def softmax_alphas(space, seed: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_() for shape in space.alpha_shapes
    ]


def dense(alphas: list[Tensor]) -> Mixing:
    return Mixing.from_weights([F.softmax(a, dim=-1) for a in alphas])


def images(batch: int = 4, size: int = 8, seed: int = 1) -> Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_close(got: Tensor, want: Tensor) -> None:
    torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=TOLERANCE)


def same_state(model: OneShotModel, reference: Network) -> None:
    mapped = from_reference_state_dict(reference.state_dict())
    for name, tensor in model.state_dict().items():
        assert_close(tensor.double(), mapped[name].double())


@pytest.mark.parametrize("number", [1, 2, 3])
@pytest.mark.parametrize("partial_channels", [1, 4])
def test_fused_model_equals_the_reference_layout_in_train_and_eval_mode(number, partial_channels):
    space, reference, model = pair(number, channels=8 if partial_channels > 1 else 3, partial_channels=partial_channels)
    x, labels = images(), torch.arange(4)
    for train in (True, False):
        reference.train(train)
        model.train(train)
        alphas = softmax_alphas(space, seed=number)
        ref_alphas = [a.detach().clone().requires_grad_() for a in alphas]
        got, want = model(x, dense(alphas)), reference(x, dense(ref_alphas))
        assert_close(got, want)
        F.cross_entropy(got, labels).backward()
        F.cross_entropy(want, labels).backward()
        for a, b in zip(alphas, ref_alphas):
            assert_close(a.grad, b.grad)
        same_state(model, reference)  # running statistics after a train-mode pass
        grads = from_reference_state_dict(
            {n: p.grad for n, p in reference.named_parameters()} | dict(reference.named_buffers())
        )
        for name, parameter in model.named_parameters():
            assert_close(parameter.grad, grads[name])
        model.zero_grad()
        reference.zero_grad()


@pytest.mark.parametrize("drop_path_prob", [0.0, 0.4])
def test_channels_last_equals_the_reference_with_gradients(drop_path_prob):
    space, reference, model = pair(2)
    model = model.to(memory_format=torch.channels_last)
    model.drop_path_prob = reference.drop_path_prob = drop_path_prob
    x, labels = images(size=16).to(memory_format=torch.channels_last), torch.arange(4)
    alphas = softmax_alphas(space, seed=7)
    ref_alphas = [a.detach().clone().requires_grad_() for a in alphas]
    torch.manual_seed(123)
    got = model(x, dense(alphas))
    torch.manual_seed(123)
    want = reference(x, dense(ref_alphas))
    assert_close(got, want)
    F.cross_entropy(got, labels).backward()
    F.cross_entropy(want, labels).backward()
    for a, b in zip(alphas, ref_alphas):
        assert_close(a.grad, b.grad)
    grads = from_reference_state_dict(
        {n: p.grad for n, p in reference.named_parameters()} | dict(reference.named_buffers())
    )
    for name, parameter in model.named_parameters():
        assert_close(parameter.grad, grads[name])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_the_dense_path_hands_its_kernels_only_dense_tensors(memory_format):
    """Group-major channel groups: no convolution, max-pool or BatchNorm reads a channel slice,
    forward or backward, in either layout (train mode, drop path on)."""
    space, _, model = pair(1, channels=3)
    model = model.to(memory_format=memory_format)
    model.drop_path_prob = 0.3
    x = images(size=16).contiguous(memory_format=memory_format)
    alphas = softmax_alphas(space, seed=2)
    with OpCounter() as counter:
        F.cross_entropy(model(x, dense(alphas)), torch.arange(4)).backward()
    assert counter.counts["convolution_backward"] > 0 and sum(counter.strided.values()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_channels_last_training_path_on_cuda_equals_float64_on_the_cpu():
    """The GPU's default path (channels-last, dense mixing, train mode) in full fp32 against the
    same weights in float64 on the CPU: loss and alpha gradients."""
    space, _, model = pair(1, channels=8)
    x, labels = images(batch=8, size=32), torch.arange(8)
    alphas = softmax_alphas(space, seed=3)
    results = []
    runs = (("cpu", torch.float64, torch.contiguous_format), ("cuda", torch.float32, torch.channels_last))
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False):
        for device, dtype, layout in runs:
            copy = OneShotModel(space, channels=8, cells=3)
            copy.load_state_dict(model.state_dict())
            copy = copy.to(device=device, dtype=dtype, memory_format=layout)
            weights = [a.detach().to(device, dtype).requires_grad_() for a in alphas]
            inputs = x.to(device, dtype).contiguous(memory_format=layout)
            loss = F.cross_entropy(copy(inputs, dense(weights)), labels.to(device))
            loss.backward()
            results.append([loss.detach(), *(w.grad for w in weights)])
    for got, want in zip(results[1], results[0], strict=True):  # fp32 on the CPU: within 5e-4 of the largest
        torch.testing.assert_close(got.cpu().double(), want, rtol=0, atol=2e-3 * float(want.abs().max()))


@pytest.mark.parametrize("number", [1, 3])
def test_sparse_op_choice_equals_the_reference_with_one_hot_weights(number):
    """GDAS/NASP style (only the chosen op runs) against the reference running all three ops with
    straight-through one-hot weights: same logits and alpha gradients."""
    space, reference, model = pair(number, seed=3)
    alphas = softmax_alphas(space, seed=11)
    probs = F.softmax(alphas[0], dim=-1)
    chosen = probs.argmax(dim=-1)
    hard = (F.one_hot(chosen, 3).double() + probs - probs.detach()).detach().requires_grad_()
    rest = lambda: [F.softmax(a, dim=-1) for a in alphas[1:]]  # noqa: E731
    got = model(images(), Mixing.from_weights([hard, *rest()], op_choice=chosen.tolist()))
    got_grads = torch.autograd.grad(got.square().sum(), [hard, *alphas[1:]])
    want = reference(images(), Mixing.from_weights([hard, *rest()]))
    want_grads = torch.autograd.grad(want.square().sum(), [hard, *alphas[1:]])
    assert_close(got, want)
    # the reference runs the other ops with weight 0, the fused model adds their weights as
    # constants: the same values, and the same gradients except for the ops that did not run
    assert_close(got_grads[0].gather(1, chosen[:, None]), want_grads[0].gather(1, chosen[:, None]))
    for got_grad, want_grad in zip(got_grads[1:], want_grads[1:]):
        assert_close(got_grad, want_grad)
    same_state_except_unused(model, reference, chosen.tolist())


def same_state_except_unused(model: OneShotModel, reference: Network, ops: list[int]) -> None:
    """Running statistics agree for the BatchNorm halves of the ops that ran."""
    mapped = from_reference_state_dict(reference.state_dict())
    state = model.state_dict()
    for name, tensor in state.items():
        if ".nodes.bns." in name and "running" in name:
            node = int(name.split(".nodes.bns.")[1].split(".")[0])
            half = tensor.shape[0] // 2
            used = {1: slice(0, half), 2: slice(half, 2 * half)}.get(ops[node])
            if used is not None:
                assert_close(tensor[used], mapped[name][used])
        elif "num_batches_tracked" in name:  # the layers that ran counted one batch
            ran = ".nodes.bns." not in name or ops[int(name.split(".nodes.bns.")[1].split(".")[0])] > 0
            assert int(tensor) == int(ran), name
        else:
            assert_close(tensor, mapped[name])


@pytest.mark.parametrize("number", [1, 3])
def test_hessian_of_the_fused_model_equals_the_reference(number):
    """The alphas' Hessian (batch statistics) through the fused model and its closed-form
    BatchNorm double backward equals the reference's (PyTorch's generic double backward)."""
    space, reference, model = pair(number, seed=5)
    x, labels = images(batch=6), torch.arange(6) % 10
    alphas = [a.detach() for a in softmax_alphas(space, seed=2)]
    matrices = []
    for net in (model, reference):
        net.train()
        with batch_statistics_only(net):
            matrices.append(hessian(lambda ps, net=net: F.cross_entropy(net(x, dense(list(ps))), labels), alphas))
    assert matrices[1].abs().max() > 1e-3
    assert_close(matrices[0], matrices[1])


# --- drop path -------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 3])
def test_drop_path_equals_dartss_drop_path_on_every_node(number):
    space, reference, model = pair(number, seed=4)
    alphas = softmax_alphas(space, seed=5)
    model.drop_path_prob = reference.drop_path_prob = 0.4
    torch.manual_seed(123)
    got = model(images(batch=8), dense(alphas))
    torch.manual_seed(123)
    want = reference(images(batch=8), dense(alphas))
    assert_close(got, want)
    model.drop_path_prob = 0.0
    assert not torch.allclose(got, model(images(batch=8), dense(alphas)))


def test_drop_path_does_nothing_in_eval_mode_or_at_zero_and_then_draws_no_random_numbers():
    space, _, model = pair(1)
    alphas = softmax_alphas(space, seed=6)
    x = images(batch=8)
    choice = Mixing.from_choice(space, CellChoice((1, 2, 0, 2), ((0,), (0, 1), (0, 2), (0, 1)), (0, 4)))
    for mixing in (dense(alphas), choice):
        model.train()
        model.drop_path_prob = 0.0
        torch.manual_seed(9)
        plain = model(x, mixing)
        after = torch.rand(3)
        torch.manual_seed(9)
        model.drop_path_prob = 0.5
        model.eval()
        evaluated = model(x, mixing)
        assert torch.equal(torch.rand(3), after)  # eval mode: no draws
        model.drop_path_prob = 0.0
        model.eval()
        assert torch.equal(model(x, mixing), evaluated)
        model.train()
        torch.manual_seed(9)
        assert torch.equal(model(x, mixing), plain)  # p = 0: bit-identical, no draws
        assert torch.equal(torch.rand(3), after)
        model.drop_path_prob = 0.5
        torch.manual_seed(9)
        assert not torch.allclose(model(x, mixing), plain)
        assert not torch.equal(torch.rand(3), after)


@pytest.mark.parametrize("chosen", [False, True])
def test_one_mixing_per_cell_equals_the_reference_layout(chosen):
    """GDAS's per-cell samples: cell i mixed by the i-th Mixing, dense or with a host-side op choice;
    the loss and the gradients of every cell's mixing weights equal the plain computation's (with
    an op choice, the op weights' at the chosen ops: the others are constants there by design)."""
    space, reference, model = pair(3, channels=3)
    generator = torch.Generator().manual_seed(5)
    mixings = []
    for _ in range(3):
        weights = [torch.rand(shape, generator=generator, dtype=torch.float64) for shape in space.alpha_shapes]
        choice = torch.randint(0, 3, (space.num_choice_nodes,), generator=generator).tolist() if chosen else None
        if chosen:
            weights[0] = F.one_hot(torch.tensor(choice), 3).to(torch.float64)
        mixings.append(Mixing.from_weights([w.requires_grad_() for w in weights], choice))
    x, labels = images(), torch.arange(4)
    results = []
    for network in (reference, model):
        loss = F.cross_entropy(network(x, mixings if network is reference else tuple(mixings)), labels)
        grads = list(torch.autograd.grad(loss, [w for m in mixings for w in m.weights()]))
        if chosen:
            per_cell = len(grads) // len(mixings)
            for cell, mixing in enumerate(mixings):
                ops = grads[cell * per_cell]
                grads[cell * per_cell] = ops[torch.arange(len(ops)), torch.tensor(mixing.op_choice)]
        results.append([loss, *grads])
    for got, want in zip(results[1], results[0]):
        assert_close(got, want)
    with pytest.raises(ValueError, match="one Mixing per cell"):
        model(x, tuple(mixings[:2]))
