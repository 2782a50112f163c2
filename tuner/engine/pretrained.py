"""A built-in sweep's `init_from`, as its trials will read it: found, checked, staged.

(And a torchvision body's `pretrained_weights` file: there, and made absolute.)

Before any trial starts: `runs:/RUN_ID/checkpoint` and `sweep:NAME` are fetched from the
sweep's MLflow (trials do not talk to MLflow), the checkpoint's network shape becomes the
sweep's (its architecture knobs; one line if the sweep sets or searches them otherwise),
its samples' shape is checked against the data, and a fetched checkpoint is copied into
the sweep's storage, local or S3, where a trial on any node reads it as it reads its own
checkpoints. `tuner validate` does all of it but the fetching: it has no tracking URI,
so MLflow references are checked for their form only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tuner.engine.storage import Storage
from tuner.engine.trainables import DATA_KNOBS
from tuner.spec import SpecError, SweepSpec
from tuner.trainer.registry import BUILTINS, Builtin

if TYPE_CHECKING:
    from tuner.trainer.checkpoint import TrainerState

KEY = "config.init_from"
STAGING_FOLDER = ".tuner-init"  # in the storage root, beside the sweeps' folders


def from_mlflow(reference: str) -> bool:
    return reference.startswith(("runs:/", "sweep:"))


def prepare_init_from(
    spec: SweepSpec, tracking_uri: str | None = None, storage: Storage | None = None
) -> SweepSpec:
    """`spec` with its checkpoint's architecture in `config` and `init_from` where the
    trials can read it; SpecError with one line if the checkpoint cannot start this sweep.
    Without `tracking_uri` (validate), an MLflow reference is left as it is."""
    builtin = BUILTINS.get(spec.trainable)
    if builtin is not None and "init_from" in spec.params:
        raise SpecError(
            None, "params.init_from", "one checkpoint starts the whole sweep: set it under config"
        )
    if builtin is not None:
        spec = _with_local_weights(spec)
    reference = spec.config.get("init_from")
    if builtin is None or not isinstance(reference, str):
        return spec
    if from_mlflow(reference) and tracking_uri is None:
        return spec
    with tempfile.TemporaryDirectory(prefix="tuner-init-") as folder:
        location = _local_copy(reference, tracking_uri, folder) if from_mlflow(reference) else None
        state = _read(location or _readable(reference))
        config = _with_architecture(spec, state, builtin)
        _check_fits(state, config, builtin, data_searched=bool(spec.params.keys() & DATA_KNOBS))
        if location is not None and storage is not None:
            config["init_from"] = _stage(location, storage)
        elif location is None:
            config["init_from"] = _readable(reference)
    return spec.model_copy(update={"config": config})


def _with_local_weights(spec: SweepSpec) -> SweepSpec:
    """A torchvision weights file named by a local path: there, and absolute for the
    trials (each runs in its own working directory)."""
    weights = spec.config.get("pretrained_weights")
    if not isinstance(weights, str) or weights.startswith(("https://", "http://")):
        return spec
    path = os.path.abspath(os.path.expanduser(weights))
    if not os.path.isfile(path):
        raise SpecError(None, "config.pretrained_weights", f"{weights}: file not found")
    return spec.model_copy(update={"config": {**spec.config, "pretrained_weights": path}})


def _readable(reference: str) -> str:
    """A local path made absolute: Ray runs each trial in its own working directory."""
    if reference.startswith("s3://"):
        return reference
    return os.path.abspath(os.path.expanduser(reference))


def _read(location: str) -> TrainerState:
    from tuner.trainer.transfer import TransferError, read_checkpoint

    try:
        return read_checkpoint(location)
    except TransferError as exc:
        raise SpecError(None, KEY, str(exc).removeprefix("init_from: ")) from None


def _local_copy(reference: str, tracking_uri: str | None, folder: str) -> str:
    """Fetch an MLflow checkpoint reference into `folder`; the local path of its state.pt."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from tuner.tracking.best import SweepNotFound, best_of_sweep

    uri = reference
    if reference.startswith("sweep:"):
        name = reference.removeprefix("sweep:")
        try:
            best = best_of_sweep(name, str(tracking_uri))
        except SweepNotFound as exc:
            raise SpecError(None, KEY, f"{reference}: {exc}") from None
        uri = f"runs:/{best.run_id}/checkpoint"
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri
        )
    except (MlflowException, OSError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(None, KEY, f"{reference}: cannot fetch {uri}: {problem}") from None
    return local


def _with_architecture(spec: SweepSpec, state: TrainerState, builtin: Builtin) -> dict[str, Any]:
    """The sweep's config with the checkpoint's network-shaping knobs, which the sweep
    may repeat but not change or search."""
    from tuner.trainer.transfer import architecture_of

    architecture = architecture_of(state)
    given = builtin.knobs.model_validate(spec.config).model_dump()
    for name, value in architecture.items():
        if name in spec.params:
            raise SpecError(
                None,
                f"params.{name}",
                f"init_from fixes the network: its {name} is {value!r}; search {name} "
                "without init_from",
            )
        if name in spec.config and given[name] != value:
            raise SpecError(
                None,
                f"config.{name}",
                f"{given[name]!r}, but the init_from checkpoint's network has {name} "
                f"{value!r}: leave {name} out, it comes with the checkpoint",
            )
    return {**spec.config, **architecture}


def _check_fits(
    state: TrainerState, config: dict[str, Any], builtin: Builtin, *, data_searched: bool
) -> None:
    try:
        knobs = builtin.knobs.model_validate(config)
    except ValidationError as exc:  # freeze: N against the checkpoint's depth, say
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "init_from"
        message = error["msg"].removeprefix("Value error, ")
        raise SpecError(None, f"config.{where}", f"{message} (with init_from)") from None
    problem = knobs.freeze_problem()
    if problem is not None:
        raise SpecError(None, "config.freeze", problem)
    if data_searched:
        return  # each trial checks the samples of the data it drew
    from tuner.trainer.data import DataError, load_splits
    from tuner.trainer.transfer import fit_problem

    try:
        splits = load_splits(knobs, builtin.task)  # type: ignore[arg-type]
    except DataError:
        return  # the sweep's data check says what is wrong with the data
    problem = fit_problem(state, knobs, splits.feature_shape)
    if problem is not None:
        raise SpecError(None, KEY, f"{knobs.init_from}: {problem}")


def _stage(local_file: str, storage: Storage) -> str:
    """Copy a fetched checkpoint into the sweep's storage, named by its content."""
    from tuner.trainer.checkpoint import STATE_FILE

    source = Path(local_file)
    raw = (source / STATE_FILE if source.is_dir() else source).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    path = f"{storage.path}/{STAGING_FOLDER}/{digest}/{STATE_FILE}"
    if storage.filesystem is None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(raw)
    else:
        with storage.filesystem.open_output_stream(path) as stream:
            stream.write(raw)
    return storage.uri_of(path)
