"""Benchmarks of the search's hot paths: median time of a step, a validation pass, the Hessian.

Steps include gathering and augmenting the batch pair on the device. Times use CUDA events on
a GPU (device time, after warm-up) and the wall clock on the CPU.
"""

from __future__ import annotations

import collections
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import optimizers
from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench1shot1.coefficients import CellCoefficients
from harness.components import (
    backend_settings,
    build_model,
    inference,
    memory_format,
    resolve_device,
    search_data,
    use_cuda_graphs,
)
from harness.config import RunConfig, optimizer_config
from harness.cuda_graphs import GraphedStep
from harness.data import SearchData, ensure_cifar10, read_cifar10_train
from harness.hessian import (
    HessianVectorProducts,
    TopEigenpair,
    architecture_eigenpair,
    dominant_eigenvalue,
    hessian_mode,
)


@dataclass(frozen=True)
class Timing:
    """Milliseconds of repeated calls: median, 10th and 90th percentile, count."""

    median: float
    p10: float
    p90: float
    count: int

    def __str__(self) -> str:
        return f"median {self.median:.2f} ms (p10 {self.p10:.2f}, p90 {self.p90:.2f}, n={self.count})"


def timing(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return Timing(statistics.median(ordered), pick(0.1), pick(0.9), len(ordered))


def time_calls(fn: Callable[[], object], repeats: int, device: torch.device) -> Timing:
    """Time `repeats` calls of `fn` one after the other (CUDA events on a GPU)."""
    if device.type != "cuda":
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return timing(samples)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return timing([start.elapsed_time(end) for start, end in events])


def random_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic uint8 images (count, 3, 32, 32) and labels (count,)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, count)


def endless_pairs(data: SearchData) -> Iterator:
    """Full-size (train, valid) batch pairs, epoch after epoch."""
    epoch = 0
    while True:
        for train, valid in data.epoch(epoch):
            if len(train[1]) == data.batch_size:
                yield train, valid
        epoch += 1


def kernel_profile(what: str, call: Callable[[], object], device: torch.device, repeats: int = 3, top: int = 15) -> str:
    """The kernels (CUDA) or ops (CPU) of `repeats` eager calls, most time first, as text."""
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for _ in range(repeats):
            call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = [e for e in prof.key_averages() if e.self_device_time_total or activity == ProfilerActivity.CPU]
    own = (lambda e: e.self_device_time_total) if device.type == "cuda" else (lambda e: e.self_cpu_time_total)
    total = sum(own(e) for e in events) / repeats / 1e3
    lines = [f"{what} profile: {sum(e.count for e in events) / repeats:.0f} kernels/ops, {total:.2f} ms per call"]
    for event in sorted(events, key=own, reverse=True)[:top]:
        lines.append(f"  {own(event) / repeats / 1e3:8.3f} ms {event.count / repeats:6.0f}x  {event.key[:100]}")
    return "\n".join(lines)


# ATen operators that only make views or allocate (no kernel on a GPU).
NO_KERNEL_OPS = frozenset(
    (
        *("view", "_unsafe_view", "_reshape_alias", "as_strided", "alias", "detach", "lift_fresh"),
        *("t", "transpose", "expand", "permute", "unsqueeze", "squeeze", "select", "slice"),
        *("unbind", "split", "split_with_sizes", "is_same_size"),
        *("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "set_"),
    )
)


# Operators whose CUDA kernels first copy an input that is dense in neither layout.
COPYING_KERNELS = frozenset(
    (
        *("convolution", "convolution_backward", "max_pool2d_with_indices", "max_pool2d_with_indices_backward"),
        *("native_batch_norm", "native_batch_norm_backward", "mm"),
    )
)


def strided(tensor: object) -> bool:
    """A tensor of 4 or more dimensions dense in neither NCHW nor channels-last (e.g. a channel
    slice): a CUDA convolution, max-pool or BatchNorm copies it before reading."""
    return (
        isinstance(tensor, Tensor)
        and tensor.dim() >= 4
        and not tensor.is_contiguous()
        and not (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last))
    )


def tensor_bytes(values: object) -> int:
    """Bytes of the distinct tensors among `values` (a pytree), each the elements it addresses
    times their size: a view counts what it spans, not its base; a broadcast (stride-0)
    dimension counts once."""
    tensors = {id(t): t for t in tree_leaves(values) if isinstance(t, Tensor)}
    return sum(
        math.prod(size for size, stride in zip(t.shape, t.stride()) if stride) * t.element_size()
        for t in tensors.values()
    )


# Arguments an operator reads only for one of its results, by that result's index in its
# `output_mask`: a convolution's backward reads the input for the weight's gradient alone and the
# weight for the input's gradient alone.
READ_FOR_RESULT = {"convolution_backward": {"input": 1, "weight": 0}}


def operands(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> tuple[list, list]:
    """The arguments of an operator call that it reads (all but `out=` arguments and those needed
    only for a result its `output_mask` leaves out, `READ_FOR_RESULT`) and those its schema marks
    written (in place, out=)."""
    named = zip(func._schema.arguments, args)
    by_name = {argument.name: argument for argument in func._schema.arguments}
    arguments = [*named, *((by_name[name], value) for name, value in kwargs.items())]
    values = {argument.name: value for argument, value in arguments}
    read_for = READ_FOR_RESULT.get(func.overloadpacket.__name__, {})
    read, written = [], []
    for argument, value in arguments:
        if argument.alias_info is not None and argument.alias_info.is_write:
            written.append(value)
        if argument.is_out or (argument.name in read_for and not values["output_mask"][read_for[argument.name]]):
            continue
        read.append(value)
    return read, written


class OpCounter(TorchDispatchMode):
    """While active: `counts`, the ATen operators dispatched, by name, views and allocations left
    out (about the kernels a GPU launches); `bytes`, by the same names, what each call reads and
    writes (`tensor_bytes` of the arguments it reads, and of those it writes and its results;
    `operands`; a tensor passed twice counts once): an estimate of the memory traffic of
    kernels that stream their operands once, as bandwidth-bound kernels on activations do;
    `strided`, the `strided` arguments that `COPYING_KERNELS` read, by operator (copies the
    operator count does not show)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.bytes: collections.Counter[str] = collections.Counter()
        self.strided: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        result = func(*args, **(kwargs or {}))
        if name in NO_KERNEL_OPS:
            return result
        read, written = operands(func, args, kwargs or {})
        self.counts[name] += 1
        self.bytes[name] += tensor_bytes(read) + tensor_bytes([*written, result])
        if name in COPYING_KERNELS:
            self.strided[name] += sum(map(strided, tree_leaves(read)))
        return result


def dispatched_ops(fn: Callable[[], object]) -> OpCounter:
    """The ATen operators that one call of `fn` dispatches (`OpCounter`: counts by name, views
    and allocations left out, about the kernels it launches on a GPU; the bytes they read and
    write), countable on any device."""
    with OpCounter() as counter:
        fn()
    return counter


def describe_ops(what: str, counter: OpCounter, top: int = 6) -> str:
    """Two lines: the number of operators in `counter` and its `top` most frequent ones; the
    bytes they read and write (GB, 1e9 bytes) and the `top` operators that move the most."""
    common = ", ".join(f"{name} {count}" for name, count in counter.counts.most_common(top))
    heaviest = ", ".join(f"{name} {size / 1e9:.2f}" for name, size in counter.bytes.most_common(top))
    return (
        f"{what}: {counter.counts.total()} ATen ops ({common}, ...)\n"
        f"  bytes read and written: {counter.bytes.total() / 1e9:.2f} GB ({heaviest}, ...)"
    )


def _eigenpair_call(
    into: list[TopEigenpair],
    model: torch.nn.Module,
    objective: Callable[[Sequence[Tensor]], Tensor],
    params: Sequence[Tensor],
    method: str,
    config: RunConfig,
    graphs: bool,
) -> Callable[[], None]:
    """A call that appends the Hessian's top eigenpair (by `method`, from a fixed start, at the
    config's tolerance and TF32 setting) to `into`."""
    return lambda: into.append(
        architecture_eigenpair(
            model, [objective], params, method, graphs, config.hessian_tolerance, config.hessian_tf32
        )
    )


def compile_cells(model: torch.nn.Module) -> None:
    """`torch.compile` each cell of the model in place (static shapes; one compiled graph per
    cell shape, compiled at its first call: 6 for the 9-cell model, where each stage's first
    cell has another input width). Coefficients that do not require gradients (a weight step's)
    are passed as leaves that do, so that the weight step runs the architecture step's graph
    instead of compiling its own (their gradients are computed and dropped)."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 4 * len(model.cells))
    for cell in model.cells:
        cell.forward = _with_coefficient_gradients(torch.compile(cell.forward, dynamic=False))


def _with_coefficient_gradients(forward: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(s0: Tensor, mixing, coefficients: CellCoefficients | None = None, drop_path_prob: float = 0.0) -> Tensor:
        if coefficients is not None and not coefficients.output.requires_grad:
            leaf = lambda rows: None if rows is None else rows.detach().requires_grad_()  # noqa: E731
            coefficients = CellCoefficients(tuple(map(leaf, coefficients.nodes)), leaf(coefficients.output))
        return forward(s0, mixing, coefficients, drop_path_prob)

    return call


def run_bench(
    config: RunConfig,
    steps: int = 50,
    warmup: int = 10,
    hessian_methods: tuple[str, ...] = ("rows", "lanczos"),
    hessian_repeats: int = 3,
    profile: bool = False,
    compile: bool = False,
    synthetic_images: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Time `config`'s optimizer on its space at its model size; print and return the figures.

    compile: `torch.compile` the cells first (`compile_cells`); the warm-up steps then include
    the compilation, and their time is reported."""
    device = resolve_device(config.device)
    with backend_settings(config, device):
        torch.manual_seed(config.seed)
        optimizer_class = optimizers.get(config.optimizer)
        options = optimizer_config(config, optimizer_class.Config)
        if synthetic_images:
            images, labels = random_images(2 * options.batch_size * 8, config.seed)
            source = "synthetic images"
        else:
            images, labels = read_cifar10_train(ensure_cifar10(config.data))
            images, labels = images[: config.data_limit], labels[: config.data_limit]
            source = f"CIFAR-10 ({len(images)} images)"
        data = search_data(config, options.batch_size, device, images, labels)
        model = build_model(config, optimizer_class, device)
        if compile:
            compile_cells(model)
        optimizer = optimizer_class(get_search_space(config.space), model, options)
        optimizer.new_epoch(0, config.epochs)
        graphed = use_cuda_graphs(config, device) and optimizer.capturable
        step_fn = GraphedStep(optimizer) if graphed else optimizer.step
        where = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
        )
        log(
            f"{config.optimizer}, space {config.space}, batch {options.batch_size}, {config.channels} channels, "
            f"{config.cells} cells, {source}, {where}, torch {torch.__version__}, "
            f"CUDA graphs {'on' if graphed else 'off'}, {'compiled cells, ' if compile else ''}"
            f"{'channels_last' if memory_format(config, device) == torch.channels_last else 'NCHW'}"
        )
        pairs = endless_pairs(data)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        results: dict[str, object] = {}

        def one_step() -> None:
            train, valid = next(pairs)
            step_fn(train, valid)

        started = time.perf_counter()
        for _ in range(warmup):
            one_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        results["warmup_seconds"] = time.perf_counter() - started
        log(f"warm-up ({warmup} steps{', compiling the cells' if compile else ''}): {results['warmup_seconds']:.1f} s")
        results["step"] = time_calls(one_step, steps, device)
        log(f"step (batch pair + search step): {results['step']}")

        if profile:
            log(kernel_profile("eager step", lambda: optimizer.step(*next(pairs)), device))
            counter = dispatched_ops(lambda: optimizer.step(*next(pairs)))
            log(describe_ops("one eager step", counter))
            log(f"  strided arguments of copying kernels (copied on a GPU): {sum(counter.strided.values())}")
        valid_images, valid_labels = next(pairs)[1]
        model.eval()
        forward = inference(model, optimizer.eval_mixing(), use_cuda_graphs(config, device))

        def validate() -> None:
            with torch.no_grad():
                F.cross_entropy(forward(valid_images), valid_labels)

        validate()
        results["validation"] = time_calls(validate, max(10, steps // 5), device)
        log(f"validation forward (one batch, eval mode): {results['validation']}")
        if profile:
            mixing = optimizer.eval_mixing()
            eager = inference(model, mixing, graphs=False)
            with torch.no_grad():
                log(describe_ops("one eager validation forward", dispatched_ops(lambda: eager(valid_images))))
                log(describe_ops("  the same through the module", dispatched_ops(lambda: model(valid_images, mixing))))
        model.train()

        params = optimizer.arch_parameters()
        objective = optimizer.architecture_objective((valid_images, valid_labels)) if params else None
        if profile and params:
            with hessian_mode(model, config.hessian_tf32):
                products = HessianVectorProducts(objective, params, graphs=False)
                direction = torch.ones_like(products.theta)
                log(describe_ops("one eager Hessian-vector product", dispatched_ops(lambda: products(direction))))
                if device.type == "cuda":
                    log(kernel_profile("eager Hessian-vector product", lambda: products(direction), device))
        for method in hessian_methods if params else ():
            eigenpairs: list[TopEigenpair] = []
            eigen = _eigenpair_call(
                eigenpairs, model, objective, params, method, config, use_cuda_graphs(config, device)
            )
            eigen()
            results[f"hessian_{method}"] = time_calls(eigen, hessian_repeats, device)
            log(
                f"Hessian eigenvalue ({method}, {sum(p.numel() for p in params)} parameters, "
                f"{eigenpairs[-1].products} Hessian-vector products): {results[f'hessian_{method}']}; "
                f"eigenvalue {dominant_eigenvalue(eigenpairs[-1], options.arch_weight_decay):.6g}"
            )
        if device.type == "cuda":
            results["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            log(f"peak GPU memory: {results['peak_memory_gib']:.2f} GiB")
        return results
