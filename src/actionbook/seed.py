"""Same seed, same numbers.

`seed_everything` seeds Python, NumPy and torch (CPU and CUDA) and switches torch to
deterministic algorithms, so that two runs with the same seed on the same machine give
identical numbers. Every experiment records the seed it used next to its results
(see `actionbook.results`).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed every random number generator the book uses; return a seeded torch.Generator.

    With `deterministic=True`, torch refuses non-deterministic kernels (raising an error
    that names the operation) and cuDNN autotuning is off. On CUDA this also needs
    `CUBLAS_WORKSPACE_CONFIG`, which is set here if the user has not set it.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def rng_state() -> dict:
    """The state of every generator, to store in a checkpoint."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (resuming a run continues its random stream)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
