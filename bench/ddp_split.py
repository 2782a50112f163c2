"""Where a 2-worker CPU step goes: compute against all-reduce, without Ray in the way.

    python -m bench.ddp_split [--smoke]

Two processes (torch.multiprocessing, gloo on loopback, 1 torch thread each, as Ray gives
a 1-CPU worker) time the steps of bench.ddp's MLP: forward + backward on their half of
the global batch with DDP's gradient sync off (`no_sync`), the all-reduce of the
gradients alone, and a full DDP step at several gradient bucket sizes; one process times
the one-process step on the whole batch. Medians over the timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, write
from bench.ddp import SMOKE_WORKLOAD, WORKLOAD

BUCKETS_MB = (25, 100)  # DDP's default, and one bucket for the whole 9.6 MB


def model_and_batch(workload: dict[str, Any], rows: int) -> tuple[Any, Any, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    width, layers = workload["hidden"], []
    features = workload["synthetic_features"]
    for i in range(workload["depth"]):
        layers += [nn.Linear(features if i == 0 else width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, workload["synthetic_classes"]))
    x = torch.randn(rows, features)
    y = torch.randint(0, workload["synthetic_classes"], (rows,))
    return model, x, y


def median_ms(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up
    took = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        took.append(time.perf_counter() - started)
    return 1000 * statistics.median(took)


def compute_and_allreduce(model: Any, x: Any, y: Any, steps: int) -> dict[str, float]:
    import torch.distributed as dist
    from torch import nn

    loss_fn = nn.CrossEntropyLoss()
    ddp = nn.parallel.DistributedDataParallel(model)

    def compute() -> None:
        with ddp.no_sync():
            loss_fn(ddp(x), y).backward()

    figures = {"compute_ms": median_ms(compute, steps)}
    grads = [p.grad for p in model.parameters() if p.grad is not None]

    def allreduce() -> None:
        for grad in grads:
            dist.all_reduce(grad)

    figures["allreduce_ms"] = median_ms(allreduce, steps)
    return figures


def worker(rank: int, workload: dict[str, Any], steps: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, x, y = model_and_batch(workload, workload["batch_size"] // 2)
    loss_fn = nn.CrossEntropyLoss()
    figures = compute_and_allreduce(model, x, y, steps)  # its DDP wrapper is freed on return
    for bucket in BUCKETS_MB:
        # A fresh copy each time: a second DDP wrapper on the same parameters would leave
        # the first one's reducer hooks on them.
        fresh, _, _ = model_and_batch(workload, 0)
        wrapped = nn.parallel.DistributedDataParallel(fresh, bucket_cap_mb=bucket)

        def ddp_step(ddp: nn.Module = wrapped) -> None:
            loss_fn(ddp(x), y).backward()

        figures[f"ddp_step_ms_bucket_{bucket}"] = median_ms(ddp_step, steps)
        del wrapped
    if rank == 0:
        Path(out).write_text(json.dumps(figures))
    # Both ranks reach here before either tears gloo down. Even so, about one run in 20
    # aborted after both had destroyed the group, in the interpreter's exit with no Python
    # frame left (SIGABRT, "terminate called without an active exception": a C++ thread
    # still joinable when torch's static objects were destroyed). The figures are written,
    # so the process leaves without running those destructors.
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(workload: dict[str, Any], steps: int) -> dict[str, Any]:
    import tempfile

    import torch
    from torch import nn
    from torch.multiprocessing.spawn import spawn

    from bench.servers import free_port

    torch.set_num_threads(1)
    model, x, y = model_and_batch(workload, workload["batch_size"])
    loss_fn = nn.CrossEntropyLoss()
    alone = median_ms(lambda: loss_fn(model(x), y).backward(), steps)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/rank0"
        spawn(worker, args=(workload, steps, free_port(), out), nprocs=2)
        two: dict[str, float] = json.loads(Path(out).read_text())
    return {
        "machine": machine(),
        "workload": workload,
        "steps": steps,
        "one_process_step_ms": alone,
        "two_workers": two,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    two = result["two_workers"]
    rows: list[tuple[str, ...]] = [("step part", "ms", "x one-process step")]
    alone = result["one_process_step_ms"]
    parts = {"one process, whole batch": alone, "2 workers: compute, half batch": two["compute_ms"],
             "2 workers: all-reduce of the gradients": two["allreduce_ms"],
             **{f"2 workers: DDP step, {b} MB buckets": two[f"ddp_step_ms_bucket_{b}"]
                for b in BUCKETS_MB}}  # fmt: skip
    for name, ms in parts.items():
        rows.append((name, f"{ms:.1f}", f"{ms / alone:.2f}"))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny workload, 3 steps")
    parser.add_argument("--batch-size", type=int, help="another global batch (default 1024)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workload = SMOKE_WORKLOAD if args.smoke else WORKLOAD
    name = "ddp-split-smoke" if args.smoke else "ddp-split"
    if args.batch_size:
        workload = {**workload, "batch_size": args.batch_size}
        name += f"-b{args.batch_size}"
    result = run(workload, 3 if args.smoke else 20)
    return write(name, result, table(result), args.out)


if __name__ == "__main__":
    main()
