"""Auxiliary objectives: known values on a tiny hand-built grid, gradients, edge cases, compositions.

The grid: B = 2 samples, T' x H' x W' = 4 x 2 x 2 tokens, embed_dim 2 x 2 levels = 4 channels.
Generator 0 sees the top row (sample 0) / the left column (sample 1) at every time step, so it has
valid pairs and whole visible tubes; generator 1 sees only t = 0 and t = 2, so it has no valid pair.
The reference values are computed token by token with plain Python loops.
"""

from __future__ import annotations

import ast
import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from jepa_lit.callbacks.term_gradients import TermGradientNorms
from jepa_lit.distributed import logsumexp
from jepa_lit.masks.base import MaskPair
from jepa_lit.objectives import (
    ActionConditioned,
    Delta,
    FactorizedWorldModel,
    GeneratorOutputs,
    Hamiltonian,
    HardWeighting,
    Kinematic,
    LatentDynamics,
    LatentTemporalContrastive,
    SIGReg,
    Spectral,
    StepOutputs,
    VelocityGate,
    objective_classes,
)
from jepa_lit.step import StepRecord, masked_mean, mean_over_generators

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


GRID = (4, 2, 2)
EMBED, LEVELS = 2, 2
WIDTH = EMBED * LEVELS


def built(objective):
    """The objective sized to the test grid, as JEPAModule.__init__ sizes it to its encoder."""
    objective.build(EMBED, LEVELS)
    return objective


def flat(t: int, h: int, w: int, grid=GRID) -> int:
    return (t * grid[1] + h) * grid[2] + w


def coords(grid=GRID):
    return [(t, h, w) for t in range(grid[0]) for h in range(grid[1]) for w in range(grid[2])]


def make_outputs(grid=GRID, online_target: bool = False, no_pairs: bool = False, seed: int = 0) -> StepOutputs:
    """Leaf tensors (context, predictions, target) so tests can read their gradients."""
    gen = torch.Generator().manual_seed(seed)
    batch, num_tokens = 2, grid[0] * grid[1] * grid[2]
    visible0 = [
        [flat(t, h, w, grid) for t, h, w in coords(grid) if h == 0],
        [flat(t, h, w, grid) for t, h, w in coords(grid) if w == 0],
    ]
    visible1 = [[flat(t, h, w, grid) for t, h, w in coords(grid) if t % 2 == 0 and h == b] for b in range(batch)]
    generators = []
    for visible in ([visible1, visible1] if no_pairs else [visible0, visible1]):
        context = torch.tensor(visible)
        target = torch.tensor([sorted(set(range(num_tokens)) - set(v)) for v in visible])
        masks = MaskPair(context, target)
        features = torch.randn(batch, context.shape[1], WIDTH, generator=gen).requires_grad_()
        predictions = torch.randn(batch, target.shape[1], WIDTH, generator=gen).requires_grad_()
        context_predictions = torch.randn(batch, context.shape[1], WIDTH, generator=gen)
        generators.append([GeneratorOutputs(masks, features, predictions, context_predictions)])
    target = torch.randn(batch, num_tokens, WIDTH, generator=gen).requires_grad_(online_target)
    clip = torch.randn(batch, 3, 2 * grid[0], 4 * grid[1], 4 * grid[2], generator=gen)
    return StepOutputs(clip, target, generators, grid, EMBED, LEVELS, step=0, max_steps=10)


# ----- references, token by token ---------------------------------------------------------------
def student(outputs: StepOutputs, g: int) -> list[dict[int, torch.Tensor]]:
    """Per sample: flat index -> student feature at the visible positions of generator g."""
    out = outputs.generators[g][0]
    return [{int(i): out.context[b, k] for k, i in enumerate(out.masks.context[b])} for b in range(2)]


def target_at(outputs: StepOutputs, b: int, t: int, h: int, w: int) -> torch.Tensor:
    return outputs.target[b, flat(t, h, w, outputs.grid)]


def pairs(outputs: StepOutputs, g: int):
    """(b, t, h, w, z_t, z_t+1) for the valid pairs of generator g."""
    z = student(outputs, g)
    grid = outputs.grid
    return [
        (b, t, h, w, z[b][flat(t, h, w, grid)], z[b][flat(t + 1, h, w, grid)])
        for b in range(2)
        for t, h, w in coords(grid)
        if t + 1 < grid[0] and flat(t, h, w, grid) in z[b] and flat(t + 1, h, w, grid) in z[b]
    ]


def scalar(v) -> float:
    return float(v.detach()) if torch.is_tensor(v) else float(v)


def mean(values) -> float:
    values = [scalar(v) for v in values]
    return sum(values) / len(values)


def close(a, b, tol=1e-5):
    assert scalar(a) == pytest.approx(scalar(b), rel=tol, abs=tol)


# ----- references: plain loops over tokens (float64 numpy where the loops would be long) ----------
def ref_hard_weighting(objective: HardWeighting, outputs: StepOutputs) -> dict[str, float]:
    per_generator = []
    for (out,) in outputs.generators:
        per_sample = []
        for b in range(2):
            errors = [
                (out.predictions[b, k] - outputs.target[b, int(i)]).abs() for k, i in enumerate(out.masks.target[b])
            ]
            e = [scalar(err.mean()) / objective.temperature for err in errors]
            z = sum(math.exp(x) for x in e)
            weights = [len(e) * math.exp(x) / z for x in e]
            per_sample.append(mean(w * scalar(err.mean()) for w, err in zip(weights, errors)))
        per_generator.append(mean(per_sample))
    return {"hw": objective.weight * mean(per_generator)}


def over_generators(outputs: StepOutputs, term) -> float:
    """The mean of ``term(g)`` over the generators with any valid pair (its argument: their pairs)."""
    return mean(term(found) for found in (pairs(outputs, g) for g in range(len(outputs.generators))) if found)


def ref_delta(objective: Delta, outputs: StepOutputs) -> dict[str, float]:
    expected = over_generators(outputs, lambda found: mean(
        ((z1 - z0) - (target_at(outputs, b, t + 1, h, w) - target_at(outputs, b, t, h, w))).abs().mean()
        for b, t, h, w, z0, z1 in found
    ))
    return {"delta": objective.weight * expected}


def dynamics(z: torch.Tensor, reads: str) -> torch.Tensor:
    """Z_dyn at app ratio 0.5: the second half of the channels."""
    return z if reads == "all" else z[z.shape[-1] // 2 :]


def ref_latent_dynamics(objective: LatentDynamics, outputs: StepOutputs) -> dict[str, float]:
    def term(found) -> float:
        errors = []
        with torch.no_grad():
            for b, t, h, w, z0, _ in found:
                change = target_at(outputs, b, t + 1, h, w) - target_at(outputs, b, t, h, w)
                errors.append((objective.head(dynamics(z0, objective.reads)) - change).abs())
        if not objective.hard_weighting:
            return mean(err.mean() for err in errors)
        e = [scalar(err.mean()) / objective.temperature for err in errors]
        z = sum(math.exp(x) for x in e)
        return mean(len(e) * math.exp(x) / z * scalar(err.mean()) for x, err in zip(e, errors))

    return {"ld": objective.weight * over_generators(outputs, term)}


def ref_factorized(objective: FactorizedWorldModel, outputs: StepOutputs) -> dict[str, float]:
    half = outputs.width // 2  # app ratio 0.5
    static = over_generators(outputs, lambda found: mean((z1[:half] - z0[:half]).abs().mean() for *_, z0, z1 in found))
    orth = []
    for (out,) in outputs.generators:
        rows = out.context.detach().reshape(-1, outputs.width).double().numpy()
        centred = rows - rows.sum(0) / len(rows)
        cov = np.array([[np.dot(centred[:, a], centred[:, d]) for d in range(half, outputs.width)]
                        for a in range(half)]) / (len(rows) - 1)
        orth.append(float((cov**2).mean()))
    return {"fwm_static": objective.static_weight * static, "fwm_orth": objective.orth_weight * mean(orth)}


def ref_spectral(objective: Spectral, outputs: StepOutputs) -> dict[str, float]:
    time_steps = outputs.grid[0]
    bins = time_steps // 2 + 1
    freq_weights = np.linspace(objective.min_freq_weight, 1.0, bins)
    z = student(outputs, 0)
    values = []
    for b in range(2):
        for h in range(outputs.grid[1]):
            for w in range(outputs.grid[2]):
                tube = [flat(t, h, w, outputs.grid) for t in range(time_steps)]
                if not all(i in z[b] for i in tube):
                    continue
                diff = np.array([(z[b][i] - outputs.target[b, i]).tolist() for i in tube])  # [T, C]
                for f in range(bins):
                    phase = np.exp(-2j * np.pi * f * np.arange(time_steps) / time_steps)
                    values += list(np.abs(freq_weights[f] * (phase[:, None] * diff).sum(0)))
    return {"spectral": objective.weight * float(np.mean(values))}


def ref_ltc(objective: LatentTemporalContrastive, outputs: StepOutputs) -> dict[str, float]:
    cos = torch.nn.functional.cosine_similarity
    expected = over_generators(outputs, lambda found: mean(
        max(0.0, objective.margin - scalar(cos(z0, target_at(outputs, b, t, h, w), dim=0))
            + scalar(cos(z0, target_at(outputs, b, t + 1, h, w), dim=0)))
        for b, t, h, w, z0, _ in found
    ))
    return {"ltc": objective.weight * expected}


def ref_action_conditioned(objective: ActionConditioned, outputs: StepOutputs) -> dict[str, float]:
    clip = outputs.clip  # [B, 3, 2 T', 4 H', 4 W']: tubelet 2, patch 4

    def mean_rgb(b, t, h, w):
        return clip[b, :, 2 * t : 2 * t + 2, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4].mean(dim=(1, 2, 3))

    def term(found) -> float:
        with torch.no_grad():
            return mean((objective.head(dynamics(z0, objective.reads)) - (mean_rgb(b, t + 1, h, w) - mean_rgb(b, t, h, w)))
                        .abs().mean() for b, t, h, w, z0, _ in found)

    return {"ac": objective.weight * over_generators(outputs, term)}


def ref_kinematic(objective: Kinematic, outputs: StepOutputs) -> dict[str, float]:
    channels, delta = int(outputs.width * objective.channel_fraction), objective.huber_delta
    values = []
    for b in range(2):
        for t, h, w in coords(outputs.grid):
            x = lambda dt: target_at(outputs, b, t + dt, h, w)[:channels]  # noqa: E731
            if objective.penalty == "acceleration" and t + 2 < outputs.grid[0]:
                values += (x(2) - 2 * x(1) + x(0)).abs().tolist()
            elif objective.penalty != "acceleration" and t + 1 < outputs.grid[0]:
                d = (x(1) - x(0)).tolist()
                if objective.penalty == "l1":
                    values += [abs(v) for v in d]
                else:
                    values += [0.5 * v * v if abs(v) < delta else delta * (abs(v) - 0.5 * delta) for v in d]
    return {"kinematic": objective.weight * mean(values)}


def ref_sigreg(objective: SIGReg, outputs: StepOutputs) -> dict[str, float]:
    x = torch.cat([g.context.detach().reshape(-1, outputs.width) for (g,) in outputs.generators]).double().numpy()
    y = x @ objective.directions(outputs.width, outputs.step, torch.device("cpu")).double().numpy()  # [n, K]
    t_max, points = float(objective.t[-1]), len(objective.t)
    t = np.linspace(-t_max, t_max, 2 * points - 1)  # the same nodes, both signs: the symmetric trapezoid rule
    ecf = np.exp(1j * y[:, :, None] * t).mean(0)  # [K, P]
    integrand = np.abs(ecf - np.exp(-t**2 / 2)) ** 2 * np.exp(-t**2 / 2)
    statistic = len(x) * np.trapezoid(integrand, t, axis=-1)
    return {"sigreg": objective.weight * float(statistic.mean())}


def ref_hamiltonian(objective: Hamiltonian, outputs: StepOutputs) -> dict[str, float]:
    """One symplectic Euler step per token, each with its own energy derivatives."""
    half, dt = outputs.width // 2, objective.dt

    def term(found) -> float:
        q_errors, p_errors = [], []
        for b, t, h, w, z0, _ in found:
            q, p = z0[:half].detach().requires_grad_(), z0[half:].detach().requires_grad_()
            dp = torch.autograd.grad(objective.energy(torch.cat([q, p])).sum(), p)[0]
            q_next = (q + dt * dp).detach().requires_grad_()
            dq = torch.autograd.grad(objective.energy(torch.cat([q_next, p])).sum(), q_next)[0]
            p_next = p - dt * dq
            target = target_at(outputs, b, t + 1, h, w)
            q_errors.append((q_next - target[:half]).abs().mean())
            p_errors.append((p_next - target[half:]).abs().mean())
        return mean(q_errors) + mean(p_errors)

    return {"hamiltonian": objective.weight * over_generators(outputs, term)}


def ref_velocity_gate(objective: VelocityGate, outputs: StepOutputs) -> dict[str, float]:
    grid = outputs.grid
    speed = {
        (b, t, h, w): float((target_at(outputs, b, t + 1, h, w) - target_at(outputs, b, t, h, w)).norm())
        for b in range(2)
        for t, h, w in coords(grid)
        if t + 1 < grid[0]
    }
    threshold = {
        (b, t): float(np.quantile([speed[b, t, h, w] for h in range(grid[1]) for w in range(grid[2])],
                                  objective.quantile))
        for b, t, *_ in speed
    }
    expected = over_generators(outputs, lambda found: mean(
        float(speed[b, t, h, w] <= threshold[b, t]) * scalar((z1 - z0).abs().mean())
        for b, t, h, w, z0, z1 in found
    ))
    return {"velgate": objective.weight * expected}


REFERENCES = {
    HardWeighting: ref_hard_weighting, Delta: ref_delta, LatentDynamics: ref_latent_dynamics,
    FactorizedWorldModel: ref_factorized, Spectral: ref_spectral, LatentTemporalContrastive: ref_ltc,
    ActionConditioned: ref_action_conditioned, Kinematic: ref_kinematic, SIGReg: ref_sigreg,
    Hamiltonian: ref_hamiltonian, VelocityGate: ref_velocity_gate,
}


def check_against_reference(objective, outputs: StepOutputs, tol: float = 1e-5) -> None:
    got = {k: scalar(v) for k, v in objective(outputs).items()}
    expected = REFERENCES[type(objective)](objective, outputs)
    assert got == pytest.approx(expected, rel=tol, abs=tol)


# ----- known values -------------------------------------------------------------------------------
@pytest.mark.parametrize("weight, temperature", [(0.3, 1.0), (1.0, 0.5)])
def test_hard_weighting_known_value(weight, temperature):
    check_against_reference(HardWeighting(weight=weight, temperature=temperature), make_outputs())


def test_delta_known_value():
    check_against_reference(Delta(weight=0.5), make_outputs())


@pytest.mark.parametrize("reads", ["all", "dynamics"])
@pytest.mark.parametrize("hard", [False, True])
def test_latent_dynamics_known_value(reads, hard):
    check_against_reference(built(LatentDynamics(weight=1.0, hidden_dim=8, reads=reads, hard_weighting=hard)),
                            make_outputs())


def test_factorized_world_model_known_value():
    check_against_reference(FactorizedWorldModel(static_weight=0.05, orth_weight=0.01), make_outputs())


def test_spectral_known_value():
    check_against_reference(Spectral(weight=1.0), make_outputs())


def test_ltc_known_value():
    check_against_reference(LatentTemporalContrastive(weight=0.5, margin=0.5), make_outputs())


@pytest.mark.parametrize("reads", ["all", "dynamics"])
def test_action_conditioned_known_value(reads):
    check_against_reference(built(ActionConditioned(weight=1.0, hidden_dim=8, reads=reads)), make_outputs())


@pytest.mark.parametrize("penalty", ["l1", "huber", "acceleration"])
@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_kinematic_known_value(penalty, fraction):
    objective = Kinematic(weight=0.1, penalty=penalty, huber_delta=0.1, channel_fraction=fraction)
    check_against_reference(objective, make_outputs(online_target=True))


def test_kinematic_anneal_schedule():
    objective = Kinematic(weight=0.1, penalty="acceleration", anneal=True, anneal_epochs=100)
    assert objective.weight_at(0, 30_000) == pytest.approx(0.1)
    assert objective.weight_at(15_000, 30_000) == pytest.approx(0.05)  # epoch 50 of 100
    assert objective.weight_at(15_299, 30_000) == pytest.approx(0.05)  # still epoch 50 (per-epoch steps)
    assert objective.weight_at(30_000, 30_000) == pytest.approx(0.0, abs=1e-12)
    assert Kinematic(weight=0.1).weight_at(30_000, 30_000) == 0.1


def test_sigreg_known_value():
    check_against_reference(SIGReg(weight=1.0, num_slices=16), make_outputs(), tol=1e-4)


def test_sigreg_statistic_separates_gaussian_from_not():
    from jepa_lit.objectives.sigreg import epps_pulley

    objective = SIGReg(num_slices=64)
    directions = objective.directions(8, step=3, device=torch.device("cpu"))
    assert directions.norm(dim=0).allclose(torch.ones(64))
    assert directions.equal(objective.directions(8, step=3, device=torch.device("cpu")))  # same on every rank
    y = torch.randn(4000, 64, generator=torch.Generator().manual_seed(0))
    assert epps_pulley(y, objective.t, objective.weights).mean() < 1.0
    assert epps_pulley(3 * y + 1, objective.t, objective.weights).mean() > 100.0


class Quadratic(nn.Module):
    """E = sum over tokens of |[q, p]|^2 / 2: dE/dp = p and dE/dq = q."""

    def forward(self, x):
        return 0.5 * x.square().sum(-1, keepdim=True)


def test_hamiltonian_known_value():
    outputs = make_outputs()
    objective = built(Hamiltonian(weight=1.0, dt=0.1))
    objective.energy = Quadratic()
    half = WIDTH // 2
    values = []
    for b, t, h, w, z0, _ in pairs(outputs, 0):  # by hand: dE/dp = p, dE/dq = q
        q, p = z0[:half], z0[half:]
        q_next = q + 0.1 * p
        p_next = p - 0.1 * q_next
        target = target_at(outputs, b, t + 1, h, w)
        values.append(((q_next - target[:half]).abs().mean(), (p_next - target[half:]).abs().mean()))
    expected = mean(v[0] for v in values) + mean(v[1] for v in values)
    close(objective(outputs)["hamiltonian"], expected)
    close(ref_hamiltonian(objective, outputs)["hamiltonian"], expected)  # the reference agrees by hand
    check_against_reference(built(Hamiltonian(weight=0.5, dt=0.2, hidden_dim=8)), outputs)  # a learned energy


@pytest.mark.parametrize("quantile", [0.5, 0.25])
def test_velocity_gate_known_value(quantile):
    check_against_reference(VelocityGate(weight=1.0, quantile=quantile), make_outputs())


# ----- every objective of the package: a reference and its cases ------------------------------------
CASES = {  # objective -> (make, the features its gradient reaches, its head or None) per variant
    HardWeighting: [(lambda: HardWeighting(), "predictions", None)],
    Delta: [(lambda: Delta(), "context", None)],
    FactorizedWorldModel: [(lambda: FactorizedWorldModel(), "context", None)],
    LatentDynamics: [
        (lambda: built(LatentDynamics(hidden_dim=8)), "context", "head"),
        (lambda: built(LatentDynamics(hidden_dim=8, reads="dynamics", hard_weighting=True)), "context", "head"),
    ],
    Spectral: [(lambda: Spectral(), "context", None)],
    LatentTemporalContrastive: [(lambda: LatentTemporalContrastive(margin=2.0), "context", None)],  # hinge active
    ActionConditioned: [
        (lambda: built(ActionConditioned(hidden_dim=8)), "context", "head"),
        (lambda: built(ActionConditioned(hidden_dim=8, reads="dynamics")), "context", "head"),
    ],
    Kinematic: [
        (lambda: Kinematic(penalty="l1"), "target", None),
        (lambda: Kinematic(penalty="huber"), "target", None),
        (lambda: Kinematic(penalty="acceleration", channel_fraction=0.5), "target", None),
    ],
    SIGReg: [(lambda: SIGReg(num_slices=8), "context", None)],
    Hamiltonian: [(lambda: built(Hamiltonian(hidden_dim=8)), "context", "energy")],
    VelocityGate: [(lambda: VelocityGate(), "context", None)],
}
OBJECTIVES = objective_classes()  # every Objective subclass in jepa_lit/objectives/, exported or not
ALL = [case for objective in OBJECTIVES for case in CASES.get(objective, [])]
TESTS = Path(__file__).parent


def has_own_known_value_test(objective: type) -> bool:
    """The tutorial's way (docs/objectives.md): tests/test_<file>.py next to this one, with a
    test_known_value* function (read, not imported)."""
    path = TESTS / f"test_{objective.__module__.rsplit('.', 1)[-1]}.py"
    return path.is_file() and any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_known_value")
                                  for node in ast.walk(ast.parse(path.read_text())))


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda cls: cls.__name__)
def test_every_objective_has_a_known_value_reference(objective):
    where = f"{objective.__module__}.{objective.__name__}"
    if has_own_known_value_test(objective):
        return
    assert objective in REFERENCES, (
        f"{where} has no known-value reference: add a ref_ function computed by hand to REFERENCES and its "
        f"variants to CASES in tests/test_objectives.py, or write tests/test_{objective.__module__.rsplit('.', 1)[-1]}"
        ".py with a test_known_value (docs/objectives.md)")
    assert CASES.get(objective), f"{where} has a reference but no case: add its variants to CASES in {__file__}"


def test_the_tables_name_only_objectives_of_the_package():
    assert set(REFERENCES) | set(CASES) <= set(OBJECTIVES) and len(OBJECTIVES) >= 11


# ----- gradients ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make, features, head", ALL)
def test_gradients_reach_features_and_head(make, features, head):
    torch.manual_seed(0)
    objective = make()
    outputs = make_outputs(online_target=features == "target")
    loss = sum(objective(outputs).values())
    loss.backward()
    grads = [g.predictions.grad if features == "predictions" else g.context.grad for (g,) in outputs.generators]
    if features == "target":
        grads = [outputs.target.grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the features got no gradient"
    if head is not None:
        for name, param in getattr(objective, head).named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{head}.{name} got no gradient"


# ----- edge cases ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make, features, head", [case for case in ALL if case[1] == "context"])
def test_no_valid_pairs_gives_an_attached_zero(make, features, head):
    objective = make()
    outputs = make_outputs(no_pairs=True)
    terms = objective(outputs)
    if isinstance(objective, SIGReg):  # SIGReg reads visible tokens, not pairs: still defined, and attached
        assert torch.isfinite(terms["sigreg"]) and terms["sigreg"].requires_grad
        return
    if isinstance(objective, FactorizedWorldModel):  # orth needs visible tokens only
        terms = {k: v for k, v in terms.items() if k == "fwm_static"}
    for value in terms.values():
        assert scalar(value) == 0.0
        value.backward(retain_graph=True)  # still in the graph (DDP needs every parameter used)
    # the masked positions give exact zeros, not nan (0 x inf in a masked softmax or a cosine at Z = 0)
    for (out,) in outputs.generators:
        assert out.context.grad is None or not out.context.grad.any()
    if head is not None:
        assert all(p.grad is not None and not p.grad.any() for p in getattr(objective, head).parameters())


def test_masked_mean_divides_by_the_selected_count_and_flags_an_empty_selection():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # 3 positions x 2 channels
    value, defined = masked_mean(values, torch.tensor([True, False, True]))
    assert value.item() == (1 + 2 + 5 + 6) / 4 and defined.item()
    value, defined = masked_mean(values.requires_grad_(), torch.zeros(3, dtype=torch.bool))
    assert value.item() == 0.0 and not defined.item() and value.requires_grad


def test_mean_over_generators_weighs_by_the_device_flags():
    outputs = make_outputs()
    yes, no = torch.tensor(True), torch.tensor(False)
    terms = {0: (torch.tensor(2.0), yes), 1: (torch.tensor(5.0), no)}
    assert mean_over_generators(outputs, terms.get).item() == 2.0
    terms = {0: (torch.tensor(2.0), yes), 1: (torch.tensor(5.0), yes)}
    assert mean_over_generators(outputs, terms.get).item() == 3.5
    terms = {0: (torch.tensor(2.0), no), 1: torch.tensor(7.0)}  # a value alone: defined (known on the host)
    assert mean_over_generators(outputs, terms.get).item() == 7.0
    assert mean_over_generators(outputs, {0: (torch.tensor(2.0), no), 1: (torch.tensor(5.0), no)}.get).item() == 0.0
    empty = mean_over_generators(outputs, {}.get)  # no term at all: the attached zero
    assert empty.item() == 0.0 and empty.requires_grad


def test_masked_logsumexp_is_over_the_selection_and_minus_inf_without_one():
    scores = torch.tensor([0.5, 3.0, -1.0])
    mask = torch.tensor([True, False, True])
    assert logsumexp(scores, mask).item() == pytest.approx(math.log(math.exp(0.5) + math.exp(-1.0)))
    assert logsumexp(scores, torch.zeros(3, dtype=torch.bool)).item() == float("-inf")


def test_spectral_needs_four_time_steps():
    with pytest.raises(ValueError, match="T'=3"):
        Spectral()(make_outputs(grid=(3, 2, 2)))


def test_acceleration_needs_three_time_steps():
    with pytest.raises(ValueError, match="T' >= 3"):
        Kinematic(penalty="acceleration")(make_outputs(grid=(2, 2, 2), online_target=True))
    Kinematic(penalty="acceleration")(make_outputs(grid=(3, 2, 2), online_target=True))


def test_kinematic_warns_on_a_detached_target():
    with pytest.warns(UserWarning, match="target_encoder: online"):
        Kinematic()(make_outputs(online_target=False))


def test_head_width_mismatch_is_a_clear_error():
    objective = LatentDynamics()
    objective.build(768, 4)
    with pytest.raises(ValueError, match="built for embed_dim=768, num_levels=4 but the encoder gives embed_dim=2"):
        objective(make_outputs())
    with pytest.raises(ValueError, match="cannot be rebuilt for embed_dim=2"):
        objective.build(EMBED, LEVELS)
    objective.build(768, 4)  # the same widths again: nothing changes
    assert objective.head[0].in_features == 3072


@pytest.mark.parametrize("make", [LatentDynamics, ActionConditioned, Hamiltonian])
def test_an_objective_used_before_build_is_a_clear_error(make):
    objective = make(hidden_dim=8)
    assert not objective.built and list(objective.parameters()) == []
    with pytest.raises(RuntimeError, match=r"no head yet: call build\(embed_dim, num_levels\)"):
        objective(make_outputs())


def test_the_module_builds_its_objectives_with_the_state_dict_names_of_old_checkpoints(tiny_module):
    module = tiny_module([LatentDynamics(hidden_dim=8, reads="dynamics"), ActionConditioned(hidden_dim=8),
                          Hamiltonian(hidden_dim=8)])
    state = module.state_dict()
    assert state["objectives.0.head.0.weight"].shape == (8, 192 * 4 // 2)  # Z_dyn of the tiny encoder
    assert state["objectives.0.head.2.weight"].shape == (192 * 4, 8)
    assert state["objectives.1.head.0.weight"].shape == (8, 192 * 4) and state["objectives.1.head.2.bias"].shape == (3,)
    assert state["objectives.2.energy.0.weight"].shape == (8, 192 * 4) and "objectives.2.energy.4.bias" not in state


def test_released_no_grad_needs_hard_weighting():
    with pytest.raises(ValueError, match="hard_weighting"):
        LatentDynamics(released_no_grad=True)


# ----- the release's LD defect --------------------------------------------------------------------
@pytest.mark.parametrize("released", [False, True])
def test_hard_weighted_ld_gradient_and_released_defect(released):
    torch.manual_seed(0)
    objective = built(LatentDynamics(hidden_dim=8, reads="dynamics", hard_weighting=True, released_no_grad=released))
    outputs = make_outputs()
    term = objective(outputs)["ld"]
    assert scalar(term) > 0
    term.backward()
    head_grad = sum(float(p.grad.abs().sum()) for p in objective.head.parameters())
    feature_grad = sum(float(g.context.grad.abs().sum()) for (g,) in outputs.generators if g.context.grad is not None)
    if released:
        assert head_grad == 0.0 and feature_grad == 0.0
    else:
        assert head_grad > 0.0 and feature_grad > 0.0
    # the value is the plain-loop one either way: only the gradient differs
    close(term, ref_latent_dynamics(objective, outputs)["ld"])


# ----- composition and per-term gradient attribution ----------------------------------------------
@pytest.fixture
def tiny_module(tiny_module):
    """The conftest's tiny module (8 frames x 32 px: the references' grid), weights seeded."""
    return partial(tiny_module, seed=0)


def fwm_hw_ld(released=False):
    return [
        FactorizedWorldModel(static_weight=0.05, orth_weight=0.01, app_ratio=0.5),
        HardWeighting(weight=1.0, temperature=1.0),
        LatentDynamics(weight=1.0, reads="dynamics", hard_weighting=True, released_no_grad=released),
    ]


def test_fwm_hw_ld_total_equals_its_parts(tiny_module):
    module = tiny_module(fwm_hw_ld())
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = module.forward_step(clip, step=0)
    assert outputs.grid == GRID  # 8 frames x 32 px, tubelet 2, patch 16: the references' grid
    terms = module.loss_terms(outputs)
    assert set(terms) == {"pred", "context", "fwm_static", "fwm_orth", "hw", "ld"}

    expected = {"context": 0.0}  # the context weight is 0 at step 0
    expected["pred"] = mean(  # L1 over every target token and channel, per generator
        mean((out.predictions[b, k] - outputs.target[b, int(i)]).abs().mean() for b in range(2)
             for k, i in enumerate(out.masks.target[b]))
        for (out,) in outputs.generators)
    for objective in module.objectives:
        expected.update(REFERENCES[type(objective)](objective, outputs))
    assert {k: scalar(v) for k, v in terms.items()} == pytest.approx(expected, rel=1e-4, abs=1e-6)
    close(torch.stack(list(terms.values())).sum(), sum(expected.values()), tol=1e-4)


@pytest.mark.parametrize("released", [False, True])
def test_term_gradient_norms_show_a_dead_term(released, tiny_module):
    module = tiny_module(fwm_hw_ld(released), target_encoder="ema")
    module.encoder.activation_checkpointing = True  # autograd.grad must work through checkpointed blocks
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = module.forward_step(clip, step=0)
    module.last_step = StepRecord(outputs, module.loss_terms(outputs), clip)
    callback = TermGradientNorms(every_n_steps=5)
    logged = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((step, metrics)))
    callback.on_before_backward(SimpleNamespace(global_step=0, loggers=[logger]), module, None)
    norms = callback.last_norms
    assert logged == [(0, norms)]
    assert set(norms) == {f"grad_norm/{k}" for k in module.last_step.terms}
    assert norms["grad_norm/pred"] > 0 and norms["grad_norm/hw"] > 0 and norms["grad_norm/fwm_static"] > 0
    assert norms["grad_norm/context"] == 0.0  # weight 0 before the ramp
    assert (norms["grad_norm/ld"] == 0.0) == released
    callback.on_before_backward(SimpleNamespace(global_step=3, loggers=[logger]), module, None)
    assert len(logged) == 1  # only every 5 steps
    torch.stack(list(module.last_step.terms.values())).sum().backward()  # the graph is still usable


def test_empirical_characteristic_gradient_matches_autograd():
    from jepa_lit.objectives.sigreg import EmpiricalCharacteristic

    y = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    t = torch.linspace(0, 3, 7, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda y: EmpiricalCharacteristic.apply(y, t), (y,))


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("make, features, head", ALL)
def test_objectives_give_their_reference_values_in_validation(make, features, head, mode):
    """Lightning's validation loop runs under inference mode (no_grad elsewhere): the values must not
    change (Hamiltonian still takes its energy's derivatives there)."""
    torch.manual_seed(0)
    objective = make()
    outputs = make_outputs(online_target=features == "target")
    expected = REFERENCES[type(objective)](objective, outputs)
    with getattr(torch, mode)():
        got = {k: float(v) for k, v in objective(make_outputs(online_target=features == "target")).items()}
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
