"""The sweep file schema and its loader.

This module is the contract between a user's YAML and the rest of tuner. It imports no
Ray and no torch, so `tuner validate` is instant and runs anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

Scalar = str | int | float | bool


class SpecError(Exception):
    """Invalid sweep file: knows the file, the key path and the problem, renders one line."""

    def __init__(self, file: str | Path | None, key: str, problem: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.problem])


class KeyedProblem(ValueError):
    """Raised inside validators that know a more precise key path than pydantic's loc."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class _Strict(BaseModel):
    # Unknown keys are errors: a typo must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- searched parameters -------------------------------------------------------------


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @field_validator("high")
    @classmethod
    def _high_above_low(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"must be greater than low ({low} >= {high})")
        return high

    @field_validator("log")
    @classmethod
    def _log_needs_positive_low(cls, log: bool, info: ValidationInfo) -> bool:
        low = info.data.get("low")
        if log and low is not None and low <= 0:
            raise ValueError(f"log scale needs low > 0 (low is {low})")
        return log


class IntParam(_Strict):
    """Integer range, both ends inclusive."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    _high_above_low = field_validator("high")(FloatParam._high_above_low.__func__)  # type: ignore[attr-defined]
    _log_needs_positive_low = field_validator("log")(
        FloatParam._log_needs_positive_low.__func__  # type: ignore[attr-defined]
    )


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: Annotated[list[Scalar], Field(min_length=1)]

    options_key: ClassVar[str] = "choices"

    @property
    def options(self) -> list[Scalar]:
        return self.choices


class GridParam(_Strict):
    """An exhaustive axis: every value is tried (grid and random searchers only)."""

    type: Literal["grid"]
    values: Annotated[list[Scalar], Field(min_length=1)]

    options_key: ClassVar[str] = "values"

    @property
    def options(self) -> list[Scalar]:
        return self.values


Param = Annotated[FloatParam | IntParam | CategoricalParam | GridParam, Field(discriminator="type")]


# --- searchers and schedulers ----------------------------------------------------------


class GridSearcher(_Strict):
    kind: Literal["grid"]


class RandomSearcher(_Strict):
    kind: Literal["random"]
    seed: int | None = None


OptunaSampler = Literal["tpe", "gp", "cmaes", "random"]


class OptunaSearcher(_Strict):
    kind: Literal["optuna"]
    sampler: OptunaSampler = "tpe"
    seed: int | None = None


Searcher = Annotated[GridSearcher | RandomSearcher | OptunaSearcher, Field(discriminator="kind")]


class FifoScheduler(_Strict):
    kind: Literal["fifo"]


class AshaScheduler(_Strict):
    kind: Literal["asha"]
    max_t: Annotated[int, Field(gt=0)]
    grace_period: Annotated[int, Field(gt=0)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3

    @field_validator("grace_period")
    @classmethod
    def _grace_within_max_t(cls, grace: int, info: ValidationInfo) -> int:
        max_t = info.data.get("max_t")
        if max_t is not None and grace > max_t:
            raise ValueError(f"must be <= max_t ({grace} > {max_t})")
        return grace


Scheduler = Annotated[FifoScheduler | AshaScheduler, Field(discriminator="kind")]


class Resources(_Strict):
    cpu: Annotated[float, Field(gt=0)] = 1
    # Fractional GPUs pack small trials on one device; they do not isolate memory.
    gpu: Annotated[float, Field(ge=0)] = 0

    @field_validator("gpu")
    @classmethod
    def _whole_gpus_above_one(cls, gpu: float) -> float:
        if gpu > 1 and not float(gpu).is_integer():
            raise ValueError(f"more than one GPU must be a whole number (got {gpu})")
        return gpu


# --- the sweep -------------------------------------------------------------------------

TRAINABLE_PATTERN = r"^(builtin:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"


class SweepSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
    trainable: Annotated[str, Field(pattern=TRAINABLE_PATTERN)]
    metric: Annotated[str, Field(min_length=1)]
    mode: Literal["max", "min"]
    num_samples: Annotated[int, Field(gt=0)] = 1
    searcher: Searcher = RandomSearcher(kind="random")
    scheduler: Scheduler = FifoScheduler(kind="fifo")
    max_concurrent_trials: Annotated[int, Field(gt=0)] | None = None
    resources_per_trial: Resources = Resources()
    params: Annotated[dict[str, Param], Field(min_length=1)]
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for key, param in self.params.items():
            if isinstance(param, GridParam) and isinstance(self.searcher, OptunaSearcher):
                raise KeyedProblem(
                    f"params.{key}.type",
                    "grid axes need searcher kind grid or random; "
                    "use type: categorical with the optuna searcher",
                )
            if isinstance(self.searcher, GridSearcher) and isinstance(param, FloatParam | IntParam):
                raise KeyedProblem(
                    f"params.{key}.type",
                    f"the grid searcher needs finite values; {param.type} ranges "
                    "need searcher kind random or optuna",
                )
            if key in self.config:
                raise KeyedProblem(f"config.{key}", "is also a searched param; keep one")
        return self

    @property
    def searcher_label(self) -> str:
        """e.g. "grid", "random", "optuna:tpe": how tags and summaries name the searcher."""
        if isinstance(self.searcher, OptunaSearcher):
            return f"optuna:{self.searcher.sampler}"
        return self.searcher.kind

    def grid_size(self) -> int:
        """Number of points on the exhaustive axes (1 when there are none)."""
        size = 1
        for param in self.params.values():
            if isinstance(param, GridParam) or (
                isinstance(self.searcher, GridSearcher) and isinstance(param, CategoricalParam)
            ):
                size *= len(param.options)
        return size

    def expected_trials(self) -> int:
        """Trials Ray Tune will run: num_samples repeats of the grid (Ray's semantics)."""
        if isinstance(self.searcher, OptunaSearcher):
            return self.num_samples
        return self.num_samples * self.grid_size()

    def with_num_samples(self, num_samples: int) -> SweepSpec:
        if num_samples <= 0:
            raise SpecError(None, "num_samples", f"must be > 0 (got {num_samples})")
        return self.model_copy(update={"num_samples": num_samples})


# --- loading ---------------------------------------------------------------------------

_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _key_path(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's loc into the user's key path, dropping the union tags it inserts."""
    keys: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.append(str(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            keys[-1:] = [f"{keys[-1]}[{part}]"] if keys else [f"[{part}]"]
            node = node[part]
        elif isinstance(node, dict) and part in (node.get("type"), node.get("kind")):
            continue  # a discriminated union's tag, not a key the user wrote
        else:
            keys.append(str(part))  # a missing key: it is not in the file to descend into
            node = None
    return ".".join(keys)


def _problem(error: Any, raw: Any) -> tuple[str, str]:
    """(key path, problem) of one pydantic error, in the words of the sweep file."""
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, KeyedProblem):
        return ctx_error.key, ctx_error.problem
    key = _key_path(raw, tuple(error["loc"]))
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Pydantic points at the union; the user wrote (or forgot) its tag key.
        ctx = error["ctx"]
        tag_key = str(ctx["discriminator"]).strip("'")
        key = f"{key}.{tag_key}" if key else tag_key
        if kind == "union_tag_not_found":
            return key, "required key is missing"
        return key, f"unknown {tag_key} {ctx['tag']!r} (expected one of: {ctx['expected_tags']})"
    message = _FRIENDLY.get(kind, error["msg"])
    return key, message.removeprefix("Value error, ")


def parse_spec(raw: Any, file: str | Path | None = None) -> SweepSpec:
    """Validate already-parsed YAML; raise SpecError with the first problem found."""
    if not isinstance(raw, dict):
        raise SpecError(file, "", "a sweep file must be a YAML mapping of keys to values")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        key, problem = _problem(first, raw)
        if len(errors) > 1:
            problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise SpecError(file, key, problem) from None
    return spec


def load_spec(path: str | Path, *, check_trainable: bool = True) -> SweepSpec:
    """Read, parse and validate a sweep file; every failure is a one-line SpecError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(path, "", "is a directory, expected a sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, "", f"cannot read: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(path, "", f"YAML syntax error at {where}{reason}") from None
    spec = parse_spec(raw, path)
    if check_trainable:
        # Imported lazily: checking a trainable may import user code, never Ray.
        from tuner.trainables import check_trainable as _check

        try:
            _check(spec)
        except SpecError as exc:
            raise SpecError(path, exc.key, exc.problem) from None
    return spec
