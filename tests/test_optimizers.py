"""Contract tests every registered optimizer goes through, and the registry's behaviour.

Each optimizer runs on a tiny one-shot model (4 channels, 3 cells) of space 1 with the
`cifar_batches` fixture (batches of 16 real CIFAR-10 images), driven only through the common
interface, in the order the runner uses: new_epoch, step..., end_epoch, discretize.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys

import pytest
import torch

import optimizers
from benchmarks.errors import MissingFileError, UnknownNameError
from benchmarks.nasbench1shot1 import Mixing
from benchmarks.nasbench101 import ModelSpec
from optimizers import registry
from optimizers.darts import DARTS
from tests import helpers
from tests.runs import REPO

STEPS = 2
EPOCHS = 2
FAST_SETTINGS = {"eval_samples": 4, "eval_top": 2, "attack_steps": 2, "controller_steps": 3}
"""Config fields that, where an optimizer has them, keep it quick (end-of-epoch search, attack)."""


class FixtureValidation:
    """`ValidationData` over the search-valid halves of the fixture's batch pairs."""

    def __init__(self, pairs):
        self.pairs = pairs

    def batch(self):
        return self.pairs[0][1]

    def batches(self):
        return iter([valid for _, valid in self.pairs])


def build(name: str, seed: int):
    """Optimizer `name` with a tiny model of space 1, everything initialised from `seed`, and
    those of FAST_SETTINGS its Config has."""
    fields = {field.name for field in dataclasses.fields(optimizers.get(name).Config)}
    return helpers.build(name, seed, **{k: v for k, v in FAST_SETTINGS.items() if k in fields})


def run_epoch(optimizer, epoch: int, pairs) -> list:
    """One epoch through the interface; the step statistics and the reported model's hash."""
    optimizer.model.train()
    optimizer.new_epoch(epoch, EPOCHS)
    numbers = []
    for train_batch, valid_batch in pairs[:STEPS]:
        stats = optimizer.step(train_batch, valid_batch)
        loss, correct = float(stats["loss"]), int(stats["correct"])
        assert math.isfinite(loss) and 0 <= correct <= len(train_batch[1])
        numbers += [loss, correct]
    optimizer.end_epoch(FixtureValidation(pairs))
    spec = optimizer.discretize()
    assert isinstance(spec, ModelSpec)
    return [*numbers, spec.hash()]


def snapshot(optimizer) -> bytes:
    """Optimizer state, model state and torch's RNG state, serialised as a checkpoint would be."""
    buffer = io.BytesIO()
    torch.save(
        {"optimizer": optimizer.state_dict(), "model": optimizer.model.state_dict(), "rng": torch.get_rng_state()},
        buffer,
    )
    return buffer.getvalue()


def restore(optimizer, saved: bytes) -> None:
    state = torch.load(io.BytesIO(saved), weights_only=True)
    optimizer.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])


def check_runs_and_resumes(name: str, pairs) -> None:
    optimizer = build(name, seed=0)
    run_epoch(optimizer, 0, pairs)
    saved = snapshot(optimizer)
    expected = run_epoch(optimizer, 1, pairs)
    with torch.no_grad():
        logits = optimizer.model(pairs[0][1][0], optimizer.eval_mixing())
    assert logits.shape == (len(pairs[0][1][1]), 10) and logits.isfinite().all()

    resumed = build(name, seed=1)
    restore(resumed, saved)
    assert run_epoch(resumed, 1, pairs) == expected


def check_seeds(name: str, pairs) -> None:
    first, again, other = (run_epoch(build(name, seed), 0, pairs) for seed in (0, 0, 1))
    assert first == again
    assert first[:-1] != other[:-1]


def check_architecture_objective(name: str, pairs) -> None:
    optimizer = build(name, seed=0)
    optimizer.new_epoch(0, EPOCHS)
    if not optimizer.arch_parameters():
        pytest.skip(f"{name} has no architecture parameters")
    objective = optimizer.architecture_objective(pairs[0][1])
    alphas = [alpha.detach().clone().requires_grad_() for alpha in optimizer.arch_parameters()]
    value = objective(alphas)
    assert torch.equal(value, objective(alphas))
    grads = torch.autograd.grad(value, alphas, create_graph=True)
    assert all(g.shape == a.shape and g.isfinite().all() for g, a in zip(grads, alphas, strict=True))
    direction = [torch.randn_like(alpha) for alpha in alphas]
    hvp = torch.autograd.grad(grads, alphas, grad_outputs=direction)
    assert all(h.isfinite().all() for h in hvp)


@pytest.mark.parametrize("name", optimizers.available())
def test_runs_two_epochs_and_resumes_exactly(name, cifar_batches):
    check_runs_and_resumes(name, cifar_batches)


@pytest.mark.parametrize("name", optimizers.available())
def test_same_seed_same_numbers_other_seed_other_numbers(name, cifar_batches):
    check_seeds(name, cifar_batches)


@pytest.mark.parametrize("name", optimizers.available())
def test_architecture_objective_is_deterministic_and_twice_differentiable(name, cifar_batches):
    check_architecture_objective(name, cifar_batches)


def test_every_optimizer_names_its_config_and_model_options():
    for name in optimizers.available():
        cls = optimizers.get(name)
        assert cls.name == name
        assert issubclass(cls.Config, optimizers.SearchConfig) and dataclasses.is_dataclass(cls.Config)
        assert isinstance(cls.model_options, dict)


def test_unknown_name_lists_available_names_and_a_close_match():
    with pytest.raises(UnknownNameError) as error:
        optimizers.get("dart")
    message = str(error.value)
    assert "Did you mean darts" in message
    assert all(name in message for name in optimizers.available())


def test_a_name_taken_by_another_class_cannot_be_registered_again():
    with pytest.raises(ValueError, match="already registered"):

        @optimizers.register("darts")
        class Impostor(DARTS):
            pass

    assert optimizers.get("darts") is DARTS


@pytest.fixture
def isolated_registry(monkeypatch):
    """Registrations made in the test are forgotten afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


class ArgmaxEvalDARTS(DARTS):
    """A user's tweak: DARTS, evaluated on its discretized (one-hot) architecture."""

    def eval_mixing(self) -> Mixing:
        return Mixing.from_choice(self.space, self.space.choose(self.alphas), self.device)


def test_a_test_local_optimizer_runs_through_the_same_interface(isolated_registry, cifar_batches):
    optimizers.register("argmax-eval-darts")(ArgmaxEvalDARTS)
    assert "argmax-eval-darts" in optimizers.available("argmax-*")
    check_runs_and_resumes("argmax-eval-darts", cifar_batches)
    check_seeds("argmax-eval-darts", cifar_batches)


def guide_example() -> str:
    """The plug-in file of docs/adding-an-optimizer.md, section 2 (its first Python block)."""
    guide = (REPO / "docs" / "adding-an-optimizer.md").read_text()
    section = guide.split("\n## 2.", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_guide_example_is_a_plugin_that_runs_and_resumes(isolated_registry, tmp_path, cifar_batches):
    path = tmp_path / "my_random_ws.py"
    path.write_text(guide_example())
    try:
        optimizers.load_plugin(path)
        assert "my-random-ws" in optimizers.available()
        check_runs_and_resumes("my-random-ws", cifar_batches)
        check_seeds("my-random-ws", cifar_batches)
    finally:
        sys.modules.pop("nas_harness_plugin_my_random_ws", None)


def test_load_plugin_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(MissingFileError, match=r"nowhere\.py"):
        optimizers.load_plugin(tmp_path / "nowhere.py")
