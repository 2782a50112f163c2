"""The built-in trainers' hyperparameters: names, types, ranges and defaults.

Torch-free so that `tuner validate` can check a sweep's params and config against the
trainer before anything heavy is imported. The trainers read their config through
these models, so a misspelled knob or an impossible combination fails in validation,
never silently in a trial.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tuner.trainer.knob_values import value_problem

Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]
Schedule = Literal["constant", "step", "cosine", "one_cycle", "cyclic"]
Activation = Literal["relu", "leaky_relu", "gelu", "tanh", "sigmoid"]
Init = Literal["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]
Pooling = Literal["max", "avg", "none"]
# torch.compile's modes (`compile: true` is "default")
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# torchvision's image networks as bodies (where torchvision is installed), with the
# blocks below the head that `freeze: N` counts: a resnet's stem and its 4 stages, the
# others' feature stages.
TORCHVISION_BLOCKS = {
    "resnet18": 5, "resnet34": 5, "resnet50": 5, "mobilenet_v3_small": 13, "efficientnet_b0": 9,
}  # fmt: skip
Model = Literal[
    "mlp", "cnn", "gru", "lstm", "conv1d",
    "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "efficientnet_b0",
]  # fmt: skip
# The models that read (T, F) sequences: a 3-D .npz is sequences to them, grey images to others.
SEQUENCE_MODELS = frozenset({"gru", "lstm", "conv1d"})
RECURRENT_MODELS = frozenset({"gru", "lstm"})

Fraction = Annotated[float, Field(ge=0, lt=1)]
NonNegative = Annotated[float, Field(ge=0)]


class TrainerKnobs(BaseModel):
    """Knobs shared by `builtin:classifier` and `builtin:regressor`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _value_as_the_knob_takes_it(cls, value: Any, info: ValidationInfo) -> Any:
        # `hidden: true` is not a 1-unit network; a wrong `compile` names its modes.
        problem = value_problem(cls.model_fields[str(info.field_name)].annotation, value)
        if problem:
            raise ValueError(problem)
        return value

    # data: a built-in set (see the subclasses), a file (local path or s3:// URI: .csv,
    # .parquet or .npz) with a label column, or a folder (ending in /, or a local directory)
    # of one sub-folder per class of PNG/JPEG images
    data_path: str | None = None
    label_column: str = "label"
    image_size: Annotated[int, Field(ge=4, le=1024)] = 32  # folders: images resized to this side
    synthetic_samples: Annotated[int, Field(ge=50, le=10_000_000)] = 2000
    synthetic_features: Annotated[int, Field(ge=2, le=100_000)] = 20
    synthetic_classes: Annotated[int, Field(ge=2, le=1000)] = 2
    synthetic_difficulty: Annotated[float, Field(ge=0, le=1)] = 0.5

    # training length and batches
    epochs: Annotated[int, Field(gt=0, le=10_000)] = 10
    batch_size: Annotated[int, Field(gt=0, le=1_000_000)] = 64
    # gradient accumulation: one optimizer step per this many batches, for an effective
    # batch of batch_size * accumulate_steps that does not fit in memory at once
    accumulate_steps: Annotated[int, Field(ge=1, le=1024)] = 1
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = (
        0  # model init, batch order, augmentation; the data split has its own seed
    )

    # optimizer
    optimizer: Optimizer = "adam"
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3
    momentum: Fraction = 0.9  # momentum, nesterov, rmsprop
    beta1: Fraction = 0.9  # adam, adamw
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    weight_decay: NonNegative = 0.0  # L2, as torch.optim applies it (decoupled for adamw)
    l1: NonNegative = 0.0  # L1 penalty on weights, added to the loss

    # learning-rate schedule, stepped per epoch (one_cycle and cyclic per optimizer step)
    lr_schedule: Schedule = "constant"
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)] = 0  # linear warm-up from lr/10
    step_size: Annotated[int, Field(ge=1, le=10_000)] = 10  # step: epochs between decays
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1  # step: decay factor
    cycle_epochs: Annotated[float, Field(gt=0, le=1000)] = 4.0  # cyclic: epochs per cycle
    # cyclic: triangular2 halves the cycle's height above lr/10 every cycle (torch's mode)
    cyclic_mode: Literal["triangular", "triangular2"] = "triangular"

    # model body
    model: Model = "mlp"
    hidden: Annotated[int, Field(gt=0, le=65_536)] = 64  # width of every hidden layer
    # hidden layers (of the CNN's and conv1d's head too); gru, lstm: stacked recurrent layers
    depth: Annotated[int, Field(ge=1, le=64)] = 2
    activation: Activation = "relu"
    init: Init = "default"
    batch_norm: bool = False
    # several GPU workers: batch norm over the global batch (SyncBatchNorm) rather than
    # each worker's part; one process already sees the whole batch, and a model without
    # batch norm has nothing to sync: both train as without it
    sync_batch_norm: bool = False
    dropout: Fraction = 0.0
    channels: Annotated[int, Field(ge=1, le=1024)] = 16  # cnn, conv1d: first block; doubles
    kernel_size: Literal[3, 5, 7] = 3  # cnn, conv1d
    conv_blocks: Annotated[int, Field(ge=1, le=6)] = 2  # cnn, conv1d
    pooling: Pooling = "max"  # cnn: 2x2 (conv1d: 2 steps) after each block while big enough
    bidirectional: bool = False  # gru, lstm: a second layer reads each sequence backwards

    # fine-tuning: start from a tuner checkpoint's weights (the network's shape comes with
    # it), a local path, s3://..., runs:/RUN_ID/checkpoint or sweep:NAME (its best trial)
    init_from: str | None = None
    # torchvision bodies: their weights from a file or an https:// URL the user gives
    # (a torchvision state dict); nothing is downloaded otherwise
    pretrained_weights: str | None = None
    # none; body: train the head only; N: the first N blocks below the head stay as loaded
    freeze: Literal["none", "body"] | Annotated[int, Field(ge=0, le=128)] = "none"
    head_lr_mult: Annotated[float, Field(gt=0, le=1000)] = 1.0  # the head's lr over the body's

    # regularization and augmentation (training batches only)
    input_noise: NonNegative = 0.0  # std of gaussian noise on standardized features
    random_shift: Annotated[int, Field(ge=0, le=32)] = 0  # images: max pixels of shift
    random_flip: bool = False  # images: horizontal flip with probability 1/2
    cutout: Annotated[int, Field(ge=0, le=64)] = 0  # images: side of a zeroed square
    mixup_alpha: NonNegative = 0.0  # Beta(alpha, alpha) mixing of pairs; 0 is off

    # optimization hygiene
    grad_clip: NonNegative = 0.0  # max global gradient norm; 0 is off
    amp: bool = True  # autocast to bfloat16 on a GPU; no effect on the CPU
    # the training and validation data held on the trial's GPU from its start, batches
    # and augmentations drawn there (tuner.trainer.device_data); auto: when they fit
    data_on_device: bool | Literal["auto"] = "auto"
    # torch.compile the model: slower first epoch (compiling), faster epochs after.
    # true is torch's default mode; a mode's name picks it: reduce-overhead replays each
    # step's kernels as CUDA graphs, for trials bound by kernel launches (small models)
    compile: bool | CompileMode = False

    # early stopping on validation loss; 0 patience is off
    patience: Annotated[int, Field(ge=0, le=10_000)] = 0
    min_delta: NonNegative = 0.0

    # cross-validation: the rows outside the test split make K folds (stratified for a
    # classifier); a trial trains a model per fold and reports the mean over folds (and
    # each val metric's std); 1 is off
    cv_folds: Annotated[int, Field(ge=1, le=20)] = 1

    # A fixed schedule of the knobs that may change mid-training: {epoch: {knob: value}},
    # each entry in effect from that epoch on (what `tuner best` prints for a PBT sweep).
    schedule: dict[Annotated[int, Field(ge=1)], dict[str, Any]] | None = None

    @field_validator("bidirectional")
    @classmethod
    def _recurrent_only(cls, value: bool, info: ValidationInfo) -> bool:
        # A field validator, not a model one, so the error names the knob: model is
        # declared above it and already validated.
        model = info.data.get("model")
        if value and model is not None and model not in RECURRENT_MODELS:
            raise ValueError(
                f"bidirectional applies to gru and lstm, not to model {model!r} "
                "(searching model? make it conditional: when: {model: [gru, lstm]})"
            )
        return value

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("give none, body or a number of blocks, not true or false")
        return value

    @field_validator("init_from")
    @classmethod
    def _a_checkpoint_reference(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = checkpoint_reference_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def body_blocks(self) -> int:
        """The weight layers below the head that `freeze: N` counts: conv blocks, then
        hidden layers; a recurrent model's stacked layers."""
        if self.model in TORCHVISION_BLOCKS:
            return TORCHVISION_BLOCKS[self.model]
        if self.model in ("cnn", "conv1d"):
            return self.conv_blocks + self.depth
        return self.depth

    @model_validator(mode="after")
    def _coherent(self) -> TrainerKnobs:
        if self.lr_schedule in ("one_cycle", "cyclic") and self.warmup_epochs:
            raise ValueError(f"{self.lr_schedule} has its own warm-up: leave warmup_epochs at 0")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs")
        if self.lr_schedule == "cosine" and self.epochs - self.warmup_epochs < 2:
            # Stepped per epoch (as step and the warm-up are): the first epoch after the
            # warm-up trains at lr, so one such epoch would never decay towards lr/100.
            raise ValueError(
                f"lr_schedule cosine needs 2 or more epochs after warm-up (the first at lr, "
                f"the last at lr/100); epochs {self.epochs} with warmup_epochs "
                f"{self.warmup_epochs} leaves 1"
            )
        if self.batch_norm and self.batch_size < 2:
            raise ValueError("batch_norm needs batch_size 2 or more: it cannot train on one sample")
        if self.data_path is not None and "dataset" in self.model_fields_set:
            raise ValueError(
                "give dataset (a built-in set) or data_path (a file or folder), not both"
            )
        for epoch, values in (self.schedule or {}).items():
            self._check_scheduled(epoch, values)
        self._check_freeze()
        return self

    def _check_freeze(self) -> None:
        loaded = self.init_from is not None or self.pretrained_weights is not None
        if self.freeze not in ("none", 0) and not loaded:
            raise ValueError(
                "freeze keeps loaded layers as they are: it needs init_from "
                "(or pretrained_weights for a torchvision model)"
            )
        if self.pretrained_weights is not None and self.model not in TORCHVISION_BLOCKS:
            raise ValueError(
                f"pretrained_weights are a torchvision model's: {', '.join(TORCHVISION_BLOCKS)} "
                f"(not {self.model!r}); a tuner checkpoint is init_from"
            )

    def freeze_problem(self) -> str | None:
        """Why `freeze` cannot apply to this network; asked once the network is the
        checkpoint's (a sweep file that leaves `depth` out has the checkpoint's)."""
        if isinstance(self.freeze, int) and self.freeze > self.body_blocks:
            return (
                f"{self.freeze} blocks, but this {self.model} has {self.body_blocks} below "
                "its head (freeze: body trains the head only)"
            )
        return None

    def _check_scheduled(self, epoch: int, values: dict[str, Any]) -> None:
        if epoch > self.epochs:
            raise ValueError(f"schedule: epoch {epoch} is after the last epoch ({self.epochs})")
        fixed = sorted(set(values) - MUTABLE_KNOBS)
        if fixed:
            raise ValueError(
                f"schedule: {fixed[0]!r} cannot change while a trial trains; "
                "a schedule may set " + ", ".join(sorted(self.mutable()))
            )
        try:
            type(self).model_validate({**self.model_dump(exclude={"schedule"}), **values})
        except ValueError as exc:  # pydantic's ValidationError: say which entry
            first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc), "loc": ()}
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"schedule: epoch {epoch}: {where}: {first['msg']}") from None

    @classmethod
    def mutable(cls) -> frozenset[str]:
        """This trainer's knobs that may change while a trial trains (`MUTABLE_KNOBS`)."""
        return MUTABLE_KNOBS & cls.model_fields.keys()

    def at_epoch(self, epoch: int) -> dict[str, Any]:
        """The scheduled values in effect at `epoch` (later entries win)."""
        values: dict[str, Any] = {}
        for start in sorted(self.schedule or {}):
            if start <= epoch:
                values |= self.schedule[start]  # type: ignore[index]
        return values


class ClassifierKnobs(TrainerKnobs):
    dataset: Literal["digits", "wine", "breast_cancer", "synthetic"] = "digits"
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    label_smoothing: Fraction = 0.0  # cross_entropy only
    focal_gamma: Annotated[float, Field(ge=0, le=10)] = 2.0
    # balanced: each class weighs n / (k * n_class) in the training loss, as scikit-learn's
    # class_weight="balanced"; validation and test scores stay unweighted
    class_weights: Literal["none", "balanced"] = "none"

    @model_validator(mode="after")
    def _loss_coherent(self) -> ClassifierKnobs:
        if self.loss == "focal" and self.label_smoothing:
            raise ValueError("label_smoothing applies to cross_entropy, not to focal loss")
        return self


class RegressorKnobs(TrainerKnobs):
    dataset: Literal["diabetes", "synthetic"] = "diabetes"
    loss: Literal["mse", "huber"] = "mse"
    huber_delta: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _regression_coherent(self) -> RegressorKnobs:
        if self.mixup_alpha:
            raise ValueError("mixup_alpha is for classification (it mixes labels)")
        return self


# The knobs that shape a network: a checkpoint fixes them for whoever starts from it.
ARCHITECTURE_KNOBS = (
    "model", "hidden", "depth", "activation", "batch_norm", "channels", "kernel_size",
    "conv_blocks", "pooling", "bidirectional",
)  # fmt: skip


def checkpoint_reference_problem(reference: str) -> str | None:
    """Why `reference` names no checkpoint init_from can read; None when its form is fine."""
    if reference.startswith("runs:/"):
        run_id, _, path = reference.removeprefix("runs:/").partition("/")
        if not run_id or not path:
            return f"{reference!r}: write runs:/RUN_ID/checkpoint"
    elif reference.startswith("sweep:"):
        if not reference.removeprefix("sweep:").strip():
            return f"{reference!r}: write sweep:NAME, the sweep whose best trial to start from"
    elif "://" in reference and not reference.startswith("s3://"):
        return f"{reference!r}: use a path, s3://..., runs:/RUN_ID/checkpoint or sweep:NAME"
    elif not reference.strip():
        return "an empty reference: use a path, s3://..., runs:/RUN_ID/checkpoint or sweep:NAME"
    return None


KNOBS_BY_TASK: dict[str, type[TrainerKnobs]] = {
    "classification": ClassifierKnobs,
    "regression": RegressorKnobs,
}

# The knobs a trial may change while it trains (population-based training takes another
# trial's checkpoint with perturbed values): the optimizer's settings and regularization,
# in effect from the next epoch. Every other knob shapes the model, the data, the
# schedule or the run, which a checkpoint of one cannot be resumed into another.
MUTABLE_KNOBS = frozenset(
    {
        "lr", "optimizer", "momentum", "beta1", "beta2", "weight_decay", "l1", "dropout",
        "input_noise", "random_shift", "random_flip", "cutout", "mixup_alpha",
        "label_smoothing", "focal_gamma", "class_weights", "huber_delta", "grad_clip",
    }
)  # fmt: skip
