"""`builtin:classifier`: an MLP classifier trained with Ray Tune's reporting contract.

Every epoch it reports train_loss, val_loss and val_accuracy and writes a checkpoint
(model + optimizer state). A restarted trial resumes at the epoch after its checkpoint
with the same weights and the same batch order it would have had uninterrupted.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from ray import tune
from torch import nn

from tuner.trainer.checkpoint import TrainerState, load_state, save_state
from tuner.trainer.data import Split, load_splits
from tuner.trainer.knobs import ClassifierKnobs
from tuner.trainer.models import build_mlp
from tuner.trainer.optim import build_optimizer


def pick_device() -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this trial (none when gpu: 0).
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(knobs: ClassifierKnobs, num_features: int, num_classes: int) -> nn.Module:
    return build_mlp(
        num_features, num_classes, hidden=knobs.hidden, depth=knobs.depth, dropout=knobs.dropout
    )


def load_model(checkpoint_dir: str) -> nn.Module:
    """Rebuild a trained model from a checkpoint directory, in eval mode, on the CPU."""
    state = load_state(checkpoint_dir)
    knobs = ClassifierKnobs.model_validate(state.knobs)
    model = build_model(knobs, state.shape["num_features"], state.shape["num_classes"])
    model.load_state_dict(state.model)
    return model.eval()


def export_model(checkpoint_dir: str) -> tuple[nn.Module, Any]:
    """The trained model and a few validation rows as its MLflow input example."""
    state = load_state(checkpoint_dir)
    example = load_splits(state.knobs["dataset"]).val.features[:5].numpy()
    return load_model(checkpoint_dir), example


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Split,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(data.labels), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        features, labels = data.features[index].to(device), data.labels[index].to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(features), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / count


@torch.no_grad()
def evaluate(model: nn.Module, data: Split, device: torch.device) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a split, in eval mode."""
    model.eval()
    logits = model(data.features.to(device))
    labels = data.labels.to(device)
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    return loss, accuracy


def train_classifier(config: dict[str, Any]) -> None:
    knobs = ClassifierKnobs.model_validate(config)
    device = pick_device()
    splits = load_splits(knobs.dataset)
    torch.manual_seed(knobs.seed)
    model = build_model(knobs, splits.num_features, splits.num_classes).to(device)
    optimizer = build_optimizer(model.parameters(), knobs)

    first_epoch = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_state(directory)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng)
        first_epoch = state.epoch + 1

    shape = {"num_features": splits.num_features, "num_classes": splits.num_classes}
    for epoch in range(first_epoch, knobs.epochs + 1):
        # Batch order depends on (seed, epoch) only, so a resumed trial replays exactly.
        generator = torch.Generator().manual_seed(knobs.seed * 1_000_003 + epoch)
        train_loss = _train_epoch(
            model, optimizer, splits.train, knobs.batch_size, generator, device
        )
        val_loss, val_accuracy = evaluate(model, splits.val, device)
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as directory:
            save_state(
                TrainerState(
                    epoch=epoch,
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    knobs=knobs.model_dump(),
                    shape=shape,
                    rng=torch.get_rng_state(),
                ),
                directory,
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
