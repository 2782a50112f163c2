"""A trial's GPU: what it reports about it each epoch, and running out of its memory.

Each epoch on a GPU reports `gpu_mem_peak_gb` (the most memory torch's allocator held
for this trial during the epoch) and, where NVML (`nvidia-ml-py`) is installed,
`gpu_utilization`: the percent of the epoch's time in which the device ran a kernel,
averaged over NVML's samples. Trials packed on one GPU share the device: its
utilization is theirs together, and its memory is not divided between them, so a
trial that asks for more than is left fails with GpuOutOfMemory, which says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

GB = 1e9


class GpuOutOfMemory(RuntimeError):
    """The trial ran out of GPU memory: the trial fails with this one line."""

    @classmethod
    def of(cls, error: BaseException) -> GpuOutOfMemory:
        # torch's first sentence says how much was asked for and how much is free.
        said = str(error).strip().split(". ")
        detail = ". ".join(said[:3]).rstrip(".") if said else "CUDA out of memory"
        return cls(
            f"{detail}. Trials sharing a GPU share its memory: lower batch_size, or give "
            "each trial a larger resources_per_trial.gpu so that fewer share one"
        )


def mean_utilization(samples: Sequence[int]) -> float | None:
    return sum(samples) / len(samples) if samples else None


class EpochGpuFigures:
    """The figures of one GPU, epoch by epoch: `started()` then `figures()`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._nvml = _nvml_handle(device)
        self._since = 0  # NVML's clock (microseconds): the samples after it are this epoch's

    def started(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)
        if self._nvml is not None:
            self._since = _latest_sample_time(self._nvml, self._since)

    def figures(self) -> dict[str, float]:
        figures = {"gpu_mem_peak_gb": torch.cuda.max_memory_allocated(self.device) / GB}
        utilization = self._utilization()
        if utilization is not None:
            figures["gpu_utilization"] = utilization
        return figures

    def _utilization(self) -> float | None:
        if self._nvml is None:
            return None
        try:
            import pynvml

            _, samples = pynvml.nvmlDeviceGetSamples(
                self._nvml, pynvml.NVML_GPU_UTILIZATION_SAMPLES, self._since
            )
            return mean_utilization([sample.sampleValue.uiVal for sample in samples])
        except Exception:  # no samples since (a very short epoch): the device's last
            try:
                return float(pynvml.nvmlDeviceGetUtilizationRates(self._nvml).gpu)
            except Exception:
                return None


class NoGpuFigures:
    """On the CPU: nothing to report."""

    def started(self) -> None:
        pass

    def figures(self) -> dict[str, float]:
        return {}


def epoch_gpu_figures(device: torch.device) -> EpochGpuFigures | NoGpuFigures:
    return EpochGpuFigures(device) if device.type == "cuda" else NoGpuFigures()


def _nvml_handle(device: torch.device) -> Any:
    """NVML's handle of `device` (which CUDA_VISIBLE_DEVICES may renumber); None
    without nvidia-ml-py or a driver that answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        # torch maps its device number through CUDA_VISIBLE_DEVICES to NVML's.
        index = torch.cuda._get_nvml_device_index(device)  # type: ignore[attr-defined]
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        logger.debug("no NVML: GPU utilization is not reported", exc_info=True)
        return None


def _latest_sample_time(handle: Any, since: int) -> int:
    try:
        import pynvml

        _, samples = pynvml.nvmlDeviceGetSamples(handle, pynvml.NVML_GPU_UTILIZATION_SAMPLES, since)
        return max((int(sample.timeStamp) for sample in samples), default=since)
    except Exception:
        return since
