"""A trial's GPU figures and its out-of-memory failure, on a machine without a GPU: what
the CPU path reports, and the one line a trial that runs out of GPU memory fails with."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from tests.conftest import REPO
from tuner.trainer import loop
from tuner.trainer.gpu import GpuOutOfMemory, NoGpuFigures, epoch_gpu_figures, mean_utilization
from tuner.trainer.loop import class_report, run_epochs

TORCH_SAYS = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
    "of which 1.06 GiB is free. Process 4242 has 78.12 GiB memory in use. Of the allocated "
    "memory 75.50 GiB is allocated by PyTorch, and 1.12 GiB is reserved but unallocated."
)
TINY = {"dataset": "wine", "hidden": 8, "epochs": 2}


def test_the_cpu_reports_no_gpu_figures() -> None:
    figures = epoch_gpu_figures(torch.device("cpu"))
    assert isinstance(figures, NoGpuFigures)
    epoch = next(run_epochs(TINY, "classification", None))
    assert not [name for name in epoch.metrics if name.startswith("gpu_")]


def test_utilization_is_the_mean_of_the_epochs_samples() -> None:
    assert mean_utilization([30, 50, 100]) == 60
    assert mean_utilization([]) is None


def test_out_of_memory_says_how_much_and_what_to_do() -> None:
    said = str(GpuOutOfMemory.of(torch.cuda.OutOfMemoryError(TORCH_SAYS)))
    assert said.startswith("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total")
    assert "1.06 GiB is free" in said
    assert "lower batch_size" in said and "resources_per_trial.gpu" in said
    assert "\n" not in said


def test_a_trial_out_of_gpu_memory_fails_with_that_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here to fill: the epoch raises what torch raises when one is full.
    def full(*args: Any, **kwargs: Any) -> float:
        raise torch.cuda.OutOfMemoryError(TORCH_SAYS)

    monkeypatch.setattr(loop, "train_epoch", full)
    with pytest.raises(GpuOutOfMemory, match="Trials sharing a GPU share its memory"):
        next(run_epochs(TINY, "classification", None))


@pytest.mark.slow  # compiling takes ~20 s on 2 cores
@pytest.mark.parametrize("compile_", [True, "reduce-overhead"])
def test_a_compiled_model_trains_as_the_plain_one(compile_: bool | str) -> None:
    """torch's default mode, and CUDA graphs' (here, on the CPU, the same compile)."""
    config = {"dataset": "digits", "epochs": 2}
    plain = [e.metrics for e in run_epochs(config, "classification", None)]
    compiled = [
        e.metrics for e in run_epochs({**config, "compile": compile_}, "classification", None)
    ]
    for mine, theirs in zip(compiled, plain, strict=True):
        assert mine["val_accuracy"] == pytest.approx(theirs["val_accuracy"], abs=0.01)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_the_class_report_is_scikit_learns_macro_average(seed: int) -> None:
    from sklearn.metrics import precision_recall_fscore_support

    generator = torch.Generator().manual_seed(seed)
    classes = 2 + seed
    labels = torch.randint(0, classes, (60,), generator=generator)
    outputs = torch.randn(60, classes + 1, generator=generator)  # may predict an unseen class
    ours = class_report(outputs, labels, "val")
    theirs = precision_recall_fscore_support(
        labels.numpy(), outputs.argmax(dim=1).numpy(), average="macro", zero_division=0
    )
    assert [ours["val_precision"], ours["val_recall"], ours["val_f1"]] == pytest.approx(
        list(theirs[:3])
    )


def test_a_trial_process_imports_no_scikit_learn() -> None:
    # A trial that takes the sweep's data splits nothing: scikit-learn costs ~0.8 s.
    script = "import sys, tuner.trainer.tune_trial; print('sklearn' in sys.modules)"
    said = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    assert said == "False"
