"""Each knob of the built-in trainers changes what it claims to change."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import run_cli
from tuner.trainer.augment import augment, cutout, mixup, random_flip, random_shift
from tuner.trainer.data import Arrays, load_splits, split_arrays
from tuner.trainer.epoch import EarlyStopping
from tuner.trainer.knobs import ClassifierKnobs, Optimizer, RegressorKnobs
from tuner.trainer.loop import (
    TrainingDiverged,
    run_epochs,
    score,
    to_tensors,
    train_epoch,
)
from tuner.trainer.losses import balanced_class_weights, build_loss, focal_loss, l1_penalty
from tuner.trainer.models import ACTIVATIONS, build_model, initialize
from tuner.trainer.optim import build_optimizer, build_schedule

CPU = torch.device("cpu")
KNOBS_DOC = Path(__file__).parent.parent / "docs" / "trainer-knobs.md"


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- initialization ----------------------------------------------------------------------


def wide_layer(init: str, activation: str = "relu") -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(1000, 1000))
    initialize(layer, init, activation)  # type: ignore[arg-type]
    return layer[0]  # type: ignore[return-value]


def test_he_init_gives_weight_variance_near_2_over_fan_in() -> None:
    for init in ("kaiming_normal", "kaiming_uniform"):
        assert wide_layer(init).weight.var().item() == pytest.approx(2 / 1000, rel=0.02)


def test_xavier_init_gives_weight_variance_near_2_over_fan_in_plus_fan_out() -> None:
    for init in ("xavier_normal", "xavier_uniform"):
        assert wide_layer(init).weight.var().item() == pytest.approx(2 / 2000, rel=0.02)
    assert torch.count_nonzero(wide_layer("xavier_normal").bias) == 0


def test_default_init_keeps_torchs_own() -> None:
    # torch's Linear default: kaiming_uniform with a=sqrt(5): variance 1 / (3 fan_in)
    assert wide_layer("default").weight.var().item() == pytest.approx(1 / 3000, rel=0.02)


# --- model bodies ------------------------------------------------------------------------


def test_every_activation_is_the_torch_module_it_names() -> None:
    for name, module in ACTIVATIONS.items():
        model = build_model((10,), 3, ClassifierKnobs(activation=name))
        assert any(isinstance(layer, module) for layer in model.modules()), name


def test_dropout_is_active_in_training_and_inactive_in_eval() -> None:
    model = build_model((64,), 10, ClassifierKnobs(dropout=0.5, hidden=256))
    x = torch.randn(32, 64)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_batch_norm_on_normalizes_hidden_activations_and_off_adds_none() -> None:
    with_bn = build_model((20,), 2, ClassifierKnobs(batch_norm=True, depth=1, hidden=50))
    without = build_model((20,), 2, ClassifierKnobs(batch_norm=False, depth=1, hidden=50))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in without.modules())
    norm = next(m for m in with_bn.modules() if isinstance(m, nn.BatchNorm1d))
    captured: list[torch.Tensor] = []
    norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with_bn.train()
    with_bn(torch.randn(256, 20) * 7 + 3)
    assert captured[0].mean(0).abs().max() < 1e-5
    assert captured[0].std(0).sub(1).abs().max() < 0.01


def test_cnn_sees_images_and_shrinks_them_with_pooling() -> None:
    knobs = ClassifierKnobs(model="cnn", conv_blocks=2, channels=4, pooling="max")
    model = build_model((1, 8, 8), 10, knobs)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    with pytest.raises(ValueError, match="needs image-shaped data"):
        build_model((64,), 10, knobs)


# --- optimizers and schedules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "settings"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.0, "nesterov": False}),
        ("momentum", torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        ("adam", torch.optim.Adam, {"betas": (0.85, 0.99), "weight_decay": 0.01}),
        ("adamw", torch.optim.AdamW, {"betas": (0.85, 0.99), "weight_decay": 0.01}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.8}),
    ],
)
def test_optimizer_knobs_reach_torch(
    name: Optimizer, kind: type, settings: dict[str, object]
) -> None:
    knobs = ClassifierKnobs(
        optimizer=name, lr=0.05, momentum=0.8, beta1=0.85, beta2=0.99, weight_decay=0.01
    )
    optimizer = build_optimizer([nn.Parameter(torch.zeros(2))], knobs)
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.05
    for key, value in settings.items():
        assert group[key] == value, key


def lrs_per_epoch(**knobs: object) -> list[float]:
    k = ClassifierKnobs(lr=0.1, **knobs)  # type: ignore[arg-type]
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], k)
    schedule, per_batch = build_schedule(optimizer, k, steps_per_epoch=4)
    rates = []
    for _ in range(k.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        for _ in range(4 if per_batch else 1):
            optimizer.step()
            schedule.step()
    return rates


def test_cosine_schedule_reaches_its_minimum_at_the_last_epoch() -> None:
    rates = lrs_per_epoch(epochs=10, lr_schedule="cosine")
    assert rates[0] == pytest.approx(0.1)
    assert min(rates) == rates[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in itertools.pairwise(rates))


def test_cosine_after_warmup_trains_its_last_step_at_the_floor() -> None:
    """The fewest decay epochs cosine takes (2, after 8 of warm-up): the last optimizer
    step of the last epoch trains at lr/100, the first after the warm-up at lr."""
    k = ClassifierKnobs(lr=0.1, epochs=10, warmup_epochs=8, lr_schedule="cosine")
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], k)
    schedule, per_step = build_schedule(optimizer, k, steps_per_epoch=4)
    assert not per_step
    at_step = []
    for _ in range(k.epochs):
        for _ in range(4):
            at_step.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
        schedule.step()
    assert at_step[8 * 4] == pytest.approx(0.1)
    assert at_step[-1] == pytest.approx(0.001)


def test_validate_refuses_cosine_with_one_epoch_after_warmup(tmp_path: Path) -> None:
    """It trained that epoch at the full lr and never decayed: refused in one line."""
    spec = {
        "name": "cosine-one-decay-epoch",
        "trainable": "builtin:classifier",
        "metric": "val_accuracy",
        "mode": "max",
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "config": {"epochs": 10, "warmup_epochs": 9, "lr_schedule": "cosine"},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    out = run_cli("validate", "sweep.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: sweep.yaml: config: lr_schedule cosine needs 2 or more epochs after warm-up "
        "(the first at lr, the last at lr/100); epochs 10 with warmup_epochs 9 leaves 1 "
        "(builtin:classifier)"
    ]


def test_step_schedule_decays_every_step_size_epochs() -> None:
    rates = lrs_per_epoch(epochs=7, lr_schedule="step", step_size=3, gamma=0.5)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_warmup_climbs_linearly_to_the_base_lr() -> None:
    rates = lrs_per_epoch(epochs=6, lr_schedule="constant", warmup_epochs=3)
    assert rates == pytest.approx([0.01, 0.04, 0.07, 0.1, 0.1, 0.1])


def test_one_cycle_rises_to_lr_then_anneals_far_below() -> None:
    rates = lrs_per_epoch(epochs=10, lr_schedule="one_cycle")
    peak = rates.index(max(rates))
    assert 0 < peak < 9 and max(rates) == pytest.approx(0.1, rel=0.1)
    assert rates[-1] < rates[0] < max(rates)


def test_warmup_with_one_cycle_is_rejected() -> None:
    with pytest.raises(ValueError, match="one_cycle has its own warm-up"):
        ClassifierKnobs(lr_schedule="one_cycle", warmup_epochs=2)


# --- losses ------------------------------------------------------------------------------


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction() -> None:
    logits, label = torch.tensor([[10.0, 0.0, 0.0]]), torch.tensor([0])
    plain = build_loss(ClassifierKnobs())(logits, label)
    smoothed = build_loss(ClassifierKnobs(label_smoothing=0.2))(logits, label)
    assert smoothed > plain + 0.5


def test_focal_loss_down_weights_easy_examples() -> None:
    easy, hard = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.2, 0.0]])
    label = torch.tensor([0])
    ce = nn.functional.cross_entropy
    assert focal_loss(easy, label, 2.0) / ce(easy, label) < 0.01
    assert focal_loss(hard, label, 2.0) / ce(hard, label) > 0.2
    assert focal_loss(hard, label, 0.0) == pytest.approx(ce(hard, label).item())


def test_regression_losses() -> None:
    outputs, targets = torch.tensor([[0.0], [0.0]]), torch.tensor([3.0, 0.5])
    assert build_loss(RegressorKnobs(loss="mse"))(outputs, targets) == pytest.approx(4.625)
    huber = build_loss(RegressorKnobs(loss="huber", huber_delta=1.0))(outputs, targets)
    assert huber == pytest.approx(((3 - 0.5) + 0.125) / 2)


def test_huber_delta_is_in_standard_deviations_of_the_target() -> None:
    """As docs/trainer-knobs.md says: the same data in other units (cents, not euros)
    trains on the same standardized targets, so one huber_delta means the same there."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3)).astype(np.float32)
    euros = features @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=200)
    loss = build_loss(RegressorKnobs(loss="huber", huber_delta=1.0))
    seen = []
    for target in (euros, 100 * euros + 7):
        train = split_arrays(Arrays(features, target.astype(np.float32)), "regression").train
        labels = torch.from_numpy(train.labels)
        assert float(labels.std()) == pytest.approx(1.0, abs=0.01)
        seen.append(float(loss(torch.zeros(len(labels), 1), labels)))
    assert seen[0] == pytest.approx(seen[1], rel=1e-4)
    row = next(line for line in KNOBS_DOC.read_text().splitlines() if "`huber_delta`" in line)
    assert "standard deviations of the target" in row


def test_l1_penalty_sums_absolute_weights_not_biases() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(-0.5)
    assert l1_penalty(model).item() == pytest.approx(0.5 * (4 + 2))


# --- gradient clipping, divergence, early stopping ---------------------------------------


def one_step_update(grad_clip: float) -> float:
    """Norm of one plain-SGD update (lr 1) on a loss with huge gradients."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    knobs = RegressorKnobs(optimizer="sgd", lr=1.0, grad_clip=grad_clip, batch_size=8)
    data = (torch.randn(8, 4) * 100, torch.randn(8) * 100)
    optimizer = build_optimizer(model.parameters(), knobs)
    train_epoch(model, optimizer, build_loss(knobs), data, knobs, generator(), CPU)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


def test_gradient_clipping_bounds_the_update_norm() -> None:
    assert one_step_update(grad_clip=0.0) > 100
    assert one_step_update(grad_clip=0.5) == pytest.approx(0.5, rel=1e-4)


def test_a_non_finite_loss_ends_training_with_a_clear_reason() -> None:
    knobs = RegressorKnobs(optimizer="sgd", lr=10.0, batch_size=4)
    model = nn.Linear(3, 1)
    data = (torch.randn(64, 3) * 1e6, torch.randn(64) * 1e6)
    with pytest.raises(TrainingDiverged, match="exploding gradients"):
        for _ in range(20):
            train_epoch(
                model, build_optimizer(model.parameters(), knobs), build_loss(knobs), data,
                knobs, generator(), CPU,
            )  # fmt: skip


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    losses = [1.0, 0.9, 0.895, 0.899, 0.891]  # 0.9 is the last real improvement
    decisions = [stopper.update(loss) for loss in losses]
    assert decisions == [False, False, False, False, True]
    assert "did not improve by more than 0.01 for 3 epochs" in stopper.reason()
    assert not any(EarlyStopping(patience=0, min_delta=0).update(1.0) for _ in range(50))


# --- augmentation ------------------------------------------------------------------------


def test_mixup_mixes_inputs_and_labels_with_one_weight() -> None:
    x = torch.eye(6)
    y = torch.arange(6)
    mixed = mixup(x, y, alpha=0.4, generator=generator(3))
    w = mixed.weight
    assert 0 <= w <= 1
    partners = mixed.partner_labels
    expected = w * x + (1 - w) * x[partners]
    assert torch.allclose(mixed.features, expected)
    assert torch.equal(mixed.labels, y)
    assert not torch.equal(partners, y)


def test_random_shift_moves_pixels_without_changing_them() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 4, 4] = 1.0
    shifted = random_shift(image.repeat(20, 1, 1, 1), 2, generator())
    positions = {tuple(torch.nonzero(s[0])[0].tolist()) for s in shifted}
    assert len(positions) > 3
    assert all(abs(r - 4) <= 2 and abs(c - 4) <= 2 for r, c in positions)
    assert torch.all(shifted.sum(dim=(1, 2, 3)) == 1.0)


def test_random_flip_mirrors_about_half() -> None:
    images = torch.arange(8.0).repeat(1, 1, 8, 1).repeat(200, 1, 1, 1)
    flipped = random_flip(images, generator())
    mirrored = (flipped[:, 0, 0, 0] == 7).float().mean().item()
    assert 0.35 < mirrored < 0.65
    assert torch.equal(flipped[flipped[:, 0, 0, 0] == 7][0], images[0].flip(-1))


def test_cutout_zeros_a_square() -> None:
    images = torch.ones(50, 1, 16, 16)
    out = cutout(images, 4, generator())
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # a full square, or a clipped corner


def test_input_noise_has_the_asked_spread_and_only_on_tabular_training_batches() -> None:
    x = torch.zeros(2000, 50)
    noisy = augment(x, ClassifierKnobs(input_noise=0.3), generator())
    assert noisy.std().item() == pytest.approx(0.3, rel=0.02)
    assert torch.equal(augment(x, ClassifierKnobs(), generator()), x)


# --- metrics -----------------------------------------------------------------------------


def test_regression_metrics_are_in_the_datas_units() -> None:
    splits = load_splits(RegressorKnobs(), "regression")
    _, labels = to_tensors(splits.val)
    perfect = score(labels[:, None], labels, build_loss(RegressorKnobs()), splits, "val")
    assert perfect["val_rmse"] == 0 and perfect["val_r2"] == 1
    mean_guess = score(
        torch.zeros(len(labels), 1), labels, build_loss(RegressorKnobs()), splits, "val"
    )
    truth = labels.double() * splits.target_std
    expected_rmse = math.sqrt(float((truth**2).mean()))
    assert mean_guess["val_rmse"] == pytest.approx(expected_rmse, rel=1e-5)
    assert mean_guess["val_r2"] < 0.05


def test_cyclic_schedule_climbs_to_lr_and_back_every_cycle() -> None:
    k = ClassifierKnobs(lr=0.1, epochs=8, lr_schedule="cyclic", cycle_epochs=2)
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], k)
    schedule, per_batch = build_schedule(optimizer, k, steps_per_epoch=4)
    assert per_batch
    rates = []
    for _ in range(k.epochs * 4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # A cycle is 8 batches: 4 up from lr/10 to lr, 4 down; 4 cycles in 8 epochs.
    assert rates[0] == pytest.approx(0.01)
    assert rates[4] == pytest.approx(0.1)
    assert rates[8] == pytest.approx(0.01)
    assert max(rates) == pytest.approx(0.1) and min(rates) == pytest.approx(0.01)
    assert rates[:8] == pytest.approx(rates[8:16])


def test_balanced_class_weights_make_every_class_weigh_the_same() -> None:
    labels = torch.tensor([0] * 8 + [1] * 2)
    weights = balanced_class_weights(labels, num_classes=3)
    assert weights.tolist() == pytest.approx([10 / (3 * 8), 10 / (3 * 2), 0.0])
    per_class = torch.bincount(labels, minlength=3).float() * weights
    assert per_class[0] == pytest.approx(per_class[1].item())


def test_balanced_weighting_makes_a_rare_class_mistake_cost_more() -> None:
    labels = torch.tensor([0] * 9 + [1])
    weights = balanced_class_weights(labels, num_classes=2)
    wrong_on_rare = torch.tensor([[2.0, 0.0]] * 9 + [[2.0, 0.0]])  # says 0 for the 1
    for loss in ("cross_entropy", "focal"):
        knobs = ClassifierKnobs(loss=loss)
        plain = build_loss(knobs)(wrong_on_rare, labels)
        weighted = build_loss(knobs, weights)(wrong_on_rare, labels)
        assert weighted > 2 * plain, loss


def test_class_weights_balanced_trains_a_real_model() -> None:
    config = {"dataset": "wine", "epochs": 5, "class_weights": "balanced", "lr": 0.01}
    epochs = list(run_epochs(config, "classification", None))
    assert len(epochs) == 5
    assert epochs[-1].metrics["val_accuracy"] > 0.8
