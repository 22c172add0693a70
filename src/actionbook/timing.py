"""Timing helpers shared by the benchmark scripts (`benchmarks/`) and the chapters' speed figures.

Models are timed *interleaved*: each repeat runs every model once, in turn, so that a
machine whose load changes during the run (other processes, CPU frequency) slows all of them
alike. Each model is warmed up first; the summary is the median over repeats and the
inter-quartile range.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from actionbook.io import atomic_write


def machine_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def devices(choice: str) -> list[str]:
    """"cpu", "cuda", or "all" (the CPU, and CUDA when there is one)."""
    if choice == "all":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch finds no CUDA device on this machine")
    return [choice]


def step(model: nn.Module, x: Tensor, *, backward: bool) -> Callable[[], None]:
    """One batch: a forward pass (eval mode, no autograd), or forward + backward (train mode)."""
    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out  # torch.nn.LSTM/GRU return (h, state)
        out.float().mean().backward()

    model.train(backward)
    return forward_backward if backward else forward


def time_interleaved(fns: dict[str, Callable[[], None]], *, device: str, repeats: int,
                     warmup: int, clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per call of each function, `repeats` times each, interleaved.

    clock="wall" measures elapsed time; clock="cpu" measures the CPU time of this process
    (`time.process_time`), which on a busy machine leaves out the time spent waiting for a
    core. CPU time adds up all threads, so use it with one thread (`--threads 1`).
    """
    now = time.perf_counter if clock == "wall" else time.process_time
    if clock == "cpu" and device != "cpu":
        raise SystemExit("--clock cpu measures CPU time: use it with --device cpu")

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = now()
            fn()
            sync()
            times[name].append(now() - t0)
    return times


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, statistics.median(values), q3


def matmul_params(model: nn.Module) -> int:
    """Multiply-adds per sequence element: the number of weights in matrices (2-D parameters)."""
    return sum(p.numel() for p in model.parameters() if p.dim() == 2)


def write_csv(rows: list[dict], path: str) -> None:
    """Write the rows as a CSV table, atomically."""
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
