"""A tiny training run shared by tests/test_engine.py: the test runs it in-process (one
process), and through `torchrun --nproc_per_node 2` as a script (two processes, gloo).

Usage (as a script): python -m torch.distributed.run --nproc_per_node 2 _ddp_worker.py OUT BATCH
"""

import os
import sys

import torch
from torch import nn

from actionbook.engine import TensorVideoDataset, TrainConfig, fit


def make_data() -> tuple[TensorVideoDataset, TensorVideoDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 6, generator=g)                   # 32 clips of 6 features
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()       # 3 classes
    train = TensorVideoDataset(x, y, clips_per_video=2)
    # 13 validation items (uneven shards) from 5 videos of 1..4 clips
    counts = torch.tensor([4, 1, 3, 2, 3])
    labels = torch.tensor([0, 1, 2, 1, 0])
    xv = torch.randn(13, 6, generator=g) + labels.repeat_interleave(counts)[:, None]
    val = TensorVideoDataset(xv, labels.repeat_interleave(counts), video_index=torch.arange(5).repeat_interleave(counts))
    return train, val


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def make_config(batch_size: int) -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=batch_size, optimizer="sgd", lr=0.2, momentum=0.9,
                       milestones=(2,), device="cpu")


def run(batch_size: int) -> tuple[list[dict], dict[str, torch.Tensor]]:
    train, val = make_data()
    model = make_model()
    history = fit(model, train, val, make_config(batch_size), progress=False)
    return list(history), model.state_dict()


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, batch = sys.argv[1], int(sys.argv[2])
    history, state = run(batch)
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save({"history": history, "state": state, "world": int(os.environ.get("WORLD_SIZE", 1))}, out)
