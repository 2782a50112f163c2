"""Fine-tuning: start a built-in model from another's trained weights (`init_from`).

The checkpoint is any built-in trial's (a path, or an s3:// URI; the driver stages
`runs:/` and `sweep:` references where the trials can read them). Its body is loaded
as it is: the network's shape must match, and the sweep inherits the knobs that shape it
(`ARCHITECTURE_KNOBS`). Its head is loaded too when it fits; when the number of
outputs differs (another set of classes) the head keeps its fresh initialization.

`freeze` keeps the first blocks below the head (or the whole body) as loaded: their
weights get no gradient and their batch norms normalize with the loaded running
statistics. `head_lr_mult` gives the head its own learning rate (discriminative rates:
a new head learns faster than a body that is already good).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuner.trainer.checkpoint import STATE_FILE, TrainerState
from tuner.trainer.data_files import s3_filesystem
from tuner.trainer.knobs import ARCHITECTURE_KNOBS, TrainerKnobs

FROZEN = "_tuner_frozen"  # set on a frozen batch norm: the training loop keeps it in eval


class TransferError(ValueError):
    """A checkpoint that cannot start this model: one line for the user."""


def read_checkpoint(location: str) -> TrainerState:
    """A built-in trial's checkpoint: a folder holding state.pt, the file itself, or either
    at an s3:// URI."""
    try:
        raw = _read(location)
    except OSError as exc:
        raise TransferError(f"init_from: cannot read {location}: {exc}") from None
    try:
        # weights_only: a checkpoint is data, never code to run.
        saved = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        return TrainerState(**saved)
    except Exception as exc:  # anything torch or the dataclass says: not our checkpoint
        raise TransferError(
            f"init_from: {location} is not a built-in trainer's checkpoint ({type(exc).__name__})"
        ) from None


def _read(location: str) -> bytes:
    if location.startswith("s3://"):
        import pyarrow.fs

        filesystem = s3_filesystem()
        key = location.removeprefix("s3://").rstrip("/")
        if filesystem.get_file_info(key).type == pyarrow.fs.FileType.Directory:
            key = f"{key}/{STATE_FILE}"
        with filesystem.open_input_stream(key) as stream:
            return bytes(stream.readall())
    path = Path(location).expanduser()
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {STATE_FILE} there" if path.name == STATE_FILE else "no file")
    return path.read_bytes()


def start_from_checkpoint(
    model: nn.Module, knobs: TrainerKnobs, feature_shape: tuple[int, ...], resuming: bool
) -> None:
    """Load `init_from` into a freshly built model (not when resuming a trial: its own
    checkpoint has the weights) and freeze what `freeze` says."""
    if knobs.pretrained_weights is not None and knobs.init_from is None and not resuming:
        from tuner.trainer.vision import TorchvisionBody, load_weights

        assert isinstance(model, TorchvisionBody)  # the knobs allow them for these only
        load_weights(model, knobs.pretrained_weights)
    if knobs.init_from is not None and not resuming:
        state = read_checkpoint(knobs.init_from)
        problem = fit_problem(state, knobs, feature_shape)
        if problem is not None:
            raise TransferError(f"init_from: {knobs.init_from}: {problem}")
        load_pretrained(model, state, knobs.init_from)
    problem = knobs.freeze_problem()
    if problem is not None:
        raise TransferError(f"freeze: {problem}")
    freeze(model, knobs)


def architecture_of(state: TrainerState) -> dict[str, Any]:
    """The knobs that shaped the checkpoint's network."""
    return {name: state.knobs[name] for name in ARCHITECTURE_KNOBS if name in state.knobs}


def fit_problem(
    state: TrainerState, knobs: TrainerKnobs, feature_shape: tuple[int, ...]
) -> str | None:
    """Why the checkpoint cannot start a model of `knobs` on samples of `feature_shape`."""
    if tuple(state.feature_shape) != tuple(feature_shape):
        return (
            f"the checkpoint was trained on samples of shape {tuple(state.feature_shape)}; "
            f"this data's are {tuple(feature_shape)}"
        )
    given = knobs.model_dump()
    for name, value in architecture_of(state).items():
        if given[name] != value:
            return (
                f"the checkpoint's network has {name} {value!r}, this sweep {given[name]!r}: "
                f"leave {name} out (it comes with the checkpoint)"
            )
    return None


@dataclass
class Block:
    """A weight layer below the head, with the batch norm that follows it."""

    parameters: list[nn.Parameter] = field(default_factory=list)
    norms: list[nn.Module] = field(default_factory=list)


_LAYER = re.compile(r"_l(\d+)(_reverse)?$")


def head_of(model: nn.Module) -> nn.Linear:
    """The output layer: a recurrent model's `head`, else the last linear layer."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head
    *_, last = (module for module in model.modules() if isinstance(module, nn.Linear))
    return last


def body_blocks(model: nn.Module) -> list[Block]:
    """The weight layers below the head, input first (what `freeze: N` counts)."""
    vision_blocks = getattr(model, "blocks", None)  # a torchvision body's stem and stages
    if isinstance(vision_blocks, list):
        return [
            Block(
                list(block.parameters()),
                [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)],
            )
            for block in vision_blocks
        ]
    rnn = getattr(model, "rnn", None)
    if isinstance(rnn, nn.RNNBase):
        layers: dict[int, Block] = {}
        for name, parameter in rnn.named_parameters():
            match = _LAYER.search(name)
            assert match is not None, name  # torch names them weight_ih_l0 and so on
            layers.setdefault(int(match.group(1)), Block()).parameters.append(parameter)
        return [layers[index] for index in sorted(layers)]
    head = head_of(model)
    blocks: list[Block] = []
    for module in model.modules():
        if module is head:
            break
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            blocks.append(Block(list(module.parameters())))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and blocks:
            blocks[-1].parameters += list(module.parameters())
            blocks[-1].norms.append(module)
    return blocks


def load_pretrained(model: nn.Module, state: TrainerState, location: str) -> bool:
    """Load the checkpoint's weights into `model`; whether its head came too."""
    own = model.state_dict()
    head = head_of(model)
    head_keys = {name for name, _ in _named(model, head)}
    for key, tensor in own.items():
        if key in head_keys:
            continue
        saved = state.model.get(key)
        if saved is None or saved.shape != tensor.shape:
            found = "missing" if saved is None else tuple(saved.shape)
            raise TransferError(
                f"init_from: {location}: its network does not fit this one "
                f"({key}: {found} in the checkpoint, {tuple(tensor.shape)} here)"
            )
    with_head = all(
        key in state.model and state.model[key].shape == own[key].shape for key in head_keys
    )
    loaded = {key: state.model[key] for key in own if with_head or key not in head_keys}
    model.load_state_dict(loaded, strict=False)
    return with_head


def _named(model: nn.Module, module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    for prefix, candidate in model.named_modules():
        if candidate is module:
            for name, parameter in module.named_parameters():
                yield f"{prefix}.{name}" if prefix else name, parameter
            return


def freeze(model: nn.Module, knobs: TrainerKnobs) -> None:
    """Keep the first `knobs.freeze` blocks below the head (all of them for `body`) as
    loaded: no gradients, and batch norms on their loaded running statistics."""
    if knobs.freeze in ("none", 0):
        return
    blocks = body_blocks(model)
    count = len(blocks) if knobs.freeze == "body" else int(knobs.freeze)
    for block in blocks[:count]:
        for parameter in block.parameters:
            parameter.requires_grad_(False)
        for norm in block.norms:
            setattr(norm, FROZEN, True)


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """After `model.train()`: a frozen batch norm must not learn the new data's statistics."""
    for module in model.modules():
        if getattr(module, FROZEN, False):
            module.eval()


def parameter_groups(model: nn.Module, knobs: TrainerKnobs) -> list[dict[str, Any]]:
    """The optimizer's groups: the trainable body at `lr`, then the head at
    `lr * head_lr_mult`. Frozen parameters are left out (weight decay must not shrink
    them); `lr` as logged is the first group's, the body's unless all of it is frozen."""
    head = set(map(id, head_of(model).parameters()))
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    head_parameters = [p for p in model.parameters() if id(p) in head]
    groups = [{"params": body}] if body else []
    return [*groups, {"params": head_parameters, "lr": knobs.lr * knobs.head_lr_mult}]
