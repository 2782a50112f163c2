"""torchvision's image networks as bodies for the built-in trainers (`model: resnet18`...).

Only where torchvision is installed, and built without weights: ImageNet weights come
from a file or an https:// URL the user names (`pretrained_weights`), never from a
download tuner decides on. The head is a new linear layer for the data's classes (or
the regressor's one output); grey images are read as three equal channels. The blocks
that `freeze: N` counts are the stem and the stages, input first.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tuner.trainer.knobs import TORCHVISION_BLOCKS


class TransferWeightsError(ValueError):
    """Weights that do not fit the named network: one line for the user."""


def torchvision_problem(model: str) -> str | None:
    """Why torchvision cannot build `model` here; None when it can."""
    if model not in TORCHVISION_BLOCKS:
        return None
    try:
        import torchvision.models  # noqa: F401
    except Exception as exc:  # absent, or built for another torch ("operator ... does not exist")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"{model!r} needs torchvision, built for this torch ({torch.__version__}): "
            f"importing it says {first}"
        )
    return None


class TorchvisionBody(nn.Module):
    def __init__(self, name: str, channels: int, num_outputs: int) -> None:
        super().__init__()
        import torchvision.models

        self.net = torchvision.models.get_model(name, weights=None)
        self.grey = channels == 1
        if name.startswith("resnet"):
            self.net.fc = nn.Linear(self.net.fc.in_features, num_outputs)
            stages = [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]
            stem = nn.ModuleList([self.net.conv1, self.net.bn1])
            self.blocks: list[nn.Module] = [stem, *stages]
        else:  # mobilenet_v3_small, efficientnet_b0: features, then a classifier
            last = self.net.classifier[-1]
            self.net.classifier[-1] = nn.Linear(last.in_features, num_outputs)
            self.blocks = list(self.net.features.children())
        assert len(self.blocks) == TORCHVISION_BLOCKS[name], name

    def forward(self, images: Tensor) -> Tensor:
        if self.grey:
            images = images.expand(-1, 3, -1, -1)
        return self.net(images)  # type: ignore[no-any-return]


def load_weights(model: TorchvisionBody, location: str) -> None:
    """A torchvision state dict from a file or an https:// URL into the body; its
    classifier is left out (this head has the data's outputs)."""
    try:
        if location.startswith(("https://", "http://")):
            state = torch.hub.load_state_dict_from_url(
                location, map_location="cpu", weights_only=True, progress=False
            )
        else:
            state = torch.load(location, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, not a state dict, or refused by weights_only
        raise TransferWeightsError(
            f"pretrained_weights: cannot load {location} ({type(exc).__name__}: {exc})"
        ) from None
    head = {name for name, _ in _head_parameters(model)}
    own = model.net.state_dict()
    for key, tensor in own.items():
        if key in head:
            continue
        saved = state.get(key) if isinstance(state, dict) else None
        if saved is None or tuple(saved.shape) != tuple(tensor.shape):
            found = "missing" if saved is None else tuple(saved.shape)
            raise TransferWeightsError(
                f"pretrained_weights: {location} does not fit this network "
                f"({key}: {found} there, {tuple(tensor.shape)} here)"
            )
    model.net.load_state_dict(
        {k: v for k, v in state.items() if k in own and k not in head}, strict=False
    )


def _head_parameters(model: TorchvisionBody) -> list[tuple[str, nn.Parameter]]:
    head = model.net.fc if hasattr(model.net, "fc") else model.net.classifier[-1]
    prefix = "fc" if hasattr(model.net, "fc") else f"classifier.{len(model.net.classifier) - 1}"
    return [(f"{prefix}.{name}", parameter) for name, parameter in head.named_parameters()]
