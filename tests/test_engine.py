"""actionbook.engine: reproducibility, resuming, evaluation by hand, multi-label, torchrun."""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import _ddp_worker
from actionbook.engine import (CHECKPOINT, ConfigError, TensorVideoDataset, TrainConfig, evaluate, fit,
                               load_checkpoint, make_optimizer)
from actionbook.metrics import mean_average_precision


class NoisyFeatures(TensorVideoDataset):
    """Adds Gaussian noise from the global RNG to every item: a random augmentation, so that
    resuming must restore the RNG state to give the same numbers."""

    def __getitem__(self, i):
        x, y, v = super().__getitem__(i)
        return x + 0.1 * torch.randn(x.shape), y, v


class TinyGRU(nn.Module):
    def __init__(self, d: int = 4, h: int = 8, c: int = 3):
        super().__init__()
        self.rnn = nn.GRU(d, h, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(h, c)

    def forward(self, x):            # (B, T, D)
        out, _ = self.rnn(x)         # (B, T, H)
        return self.fc(self.drop(out[:, -1]))  # (B, C)


def _data(n_videos=12, clips=2, T=5, D=4, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_videos) % C
    x = torch.randn(n_videos * clips, T, D, generator=g) + labels.repeat_interleave(clips)[:, None, None]
    return NoisyFeatures(x, labels.repeat_interleave(clips), clips_per_video=clips)


def _model(seed=0):
    torch.manual_seed(seed)
    return TinyGRU()


CFG = dict(epochs=4, batch_size=5, optimizer="adam", lr=0.02, milestones=(3,), gamma=0.5, device="cpu")


def _strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same_weights(a: nn.Module, b: nn.Module):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


# --------------------------------------------------------------------------- config

def test_config_validation_messages():
    with pytest.raises(ConfigError, match="unknown optimizer 'lbfgs': choose one of sgd, adam, rmsprop"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="epochs must be an int >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="milestones"):
        TrainConfig(milestones=(5, 3))
    with pytest.raises(ConfigError, match="multilabel"):
        TrainConfig(multilabel=True, label_smoothing=0.1)
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")
    assert TrainConfig(milestones=[3, 5]).milestones == (3, 5)


def test_lr_groups_and_optimizers():
    model = _model()
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, lr_groups={"fc.": 0.01}))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert len(opt.param_groups[1]["params"]) == 2  # fc.weight, fc.bias
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="rmsprop")), torch.optim.RMSprop)
    with pytest.raises(ConfigError, match=r"match no trainable parameter.*\['rnn', 'drop', 'fc'\]"):
        make_optimizer(model, TrainConfig(lr_groups={"backbone.": 0.1}))


# --------------------------------------------------------------------------- fit

def test_same_seed_same_history_and_schedule():
    ds = _data()
    a, b = _model(), _model()
    ha = fit(a, ds, ds, TrainConfig(**CFG), progress=False)
    hb = fit(b, ds, ds, TrainConfig(**CFG), progress=False)
    assert _strip(ha) == _strip(hb)
    _assert_same_weights(a, b)
    # milestones=(3,), gamma=0.5: epochs 1-3 at lr, epoch 4 at lr / 2
    assert [row["lr"] for row in ha] == pytest.approx([0.02, 0.02, 0.02, 0.01])
    assert set(ha[0]) >= {"train_loss", "train_acc", "val_loss", "val_clip_top1", "val_video_top1",
                          "val_video_top5", "val_video_mean_class", "seconds"}
    assert ha[-1]["train_loss"] < ha[0]["train_loss"]  # it learns (classes are separable)
    hc = fit(_model(), ds, ds, TrainConfig(**{**CFG, "seed": 1}), progress=False)
    assert _strip(hc) != _strip(ha)  # and the seed matters


def test_resume_after_a_kill_is_bit_identical(tmp_path):
    ds = _data()
    ref = _model()
    h_ref = fit(ref, ds, ds, TrainConfig(**CFG), ckpt_dir=tmp_path / "ref", progress=False)

    first = _model()
    h1 = fit(first, ds, ds, TrainConfig(**CFG), ckpt_dir=tmp_path / "run", progress=False, stop_after_epoch=2)
    assert len(h1) == 2
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert ckpt["epoch"] == 2 and ckpt["config"]["optimizer"] == "adam" and len(ckpt["history"]) == 2
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "loader_generator"}
    torch.randn(100)  # the world moves on between the kill and the restart

    second = _model(seed=123)  # a new process builds a fresh model: its weights must be replaced
    h2 = fit(second, ds, ds, TrainConfig(**{**CFG, "log_every": 3}), ckpt_dir=tmp_path / "run", progress=False)
    assert _strip(h2) == _strip(h_ref)
    _assert_same_weights(second, ref)
    final = load_checkpoint(tmp_path / "run" / CHECKPOINT)  # a finished run keeps no optimizer state
    assert final["epoch"] == CFG["epochs"] and final["optimizer"] is None and final["scheduler"] is None
    assert not [p for p in (tmp_path / "run").iterdir() if p.name != CHECKPOINT]  # no temp files left

    # a finished run is loaded, not retrained
    third = _model(seed=7)
    mtime = (tmp_path / "run" / CHECKPOINT).stat().st_mtime_ns
    h3 = fit(third, ds, ds, TrainConfig(**CFG), ckpt_dir=tmp_path / "run", progress=False)
    assert _strip(h3) == _strip(h_ref)
    assert (tmp_path / "run" / CHECKPOINT).stat().st_mtime_ns == mtime, "no epoch was trained again"
    _assert_same_weights(third, ref)


def test_resume_with_another_config_is_refused(tmp_path):
    ds = _data(n_videos=6)
    fit(_model(), ds, None, TrainConfig(**{**CFG, "epochs": 2}), ckpt_dir=tmp_path, progress=False, stop_after_epoch=1)
    with pytest.raises(ConfigError, match=r"(?s)another config.*epochs: checkpoint 2 != now 4.*lr: checkpoint 0.02 != now 0.01"):
        fit(_model(), ds, None, TrainConfig(**{**CFG, "lr": 0.01}), ckpt_dir=tmp_path, progress=False)
    # resume=False starts afresh instead
    h = fit(_model(), ds, None, TrainConfig(**{**CFG, "lr": 0.01}), ckpt_dir=tmp_path, resume=False, progress=False)
    assert len(h) == 4 and "val_loss" not in h[0]


def test_bad_dataset_and_model_are_explained():
    bad = [(torch.zeros(3), 0)]
    with pytest.raises(TypeError, match=r"triple \(x, y, video_index\)"):
        fit(_model(), bad, None, TrainConfig(epochs=1, device="cpu"), progress=False)
    ds = TensorVideoDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits of shape \(batch, num_classes\)"):
        evaluate(nn.Flatten(0), ds, device="cpu")


# --------------------------------------------------------------------------- evaluate

def test_evaluate_video_averaging_by_hand():
    # the "model" passes its input through: the inputs are the logits, log(p), so softmax gives p
    p = torch.tensor([
        [0.75, 0.25],   # video 7, true 0: right
        [0.90, 0.10],   # video 3, true 0: right
        [0.25, 0.75],   # video 7: wrong
        [0.20, 0.80],   # video 7: wrong
    ])
    ds = TensorVideoDataset(p.log(), torch.tensor([0, 0, 0, 0]), video_index=torch.tensor([7, 3, 7, 7]))
    res = evaluate(nn.Identity(), ds, batch_size=3, device="cpu")
    assert res.clip["top1"] == pytest.approx(0.5)
    assert res.video_ids.tolist() == [3, 7]
    # video 7 averages to [0.4, 0.6]: the clip majority (wrong) stays wrong; video 3 right
    torch.testing.assert_close(res.video_scores, torch.tensor([[0.9, 0.1], [0.4, 0.6]]))
    assert res.video["top1"] == pytest.approx(0.5) and res.video["top5"] == 1.0
    assert res.video_pred.tolist() == [0, 1]
    assert res.video_targets.tolist() == [0, 0]
    assert res.loss == pytest.approx(-(math.log(0.75) + math.log(0.9) + math.log(0.25) + math.log(0.2)) / 4)
    torch.testing.assert_close(res.video_logits[1], p.log()[[0, 2, 3]].mean(0))
    assert res.metrics(prefix="val_")["val_video_top1"] == pytest.approx(0.5)
    mx = evaluate(nn.Identity(), ds, device="cpu", reduce="max")
    torch.testing.assert_close(mx.video_scores, torch.tensor([[0.9, 0.1], [0.75, 0.8]]))


def test_multilabel_gives_map():
    from test_metrics import SCORES, TARGET  # the 5 x 3 example worked out by hand

    ds = TensorVideoDataset(torch.logit(SCORES), TARGET)
    res = evaluate(nn.Identity(), ds, device="cpu", multilabel=True)
    assert res.clip["map"] == pytest.approx(113 / 180) and res.video["map"] == pytest.approx(113 / 180)
    assert "top1" not in res.video

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = torch.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 0] + x[:, 1] > 1], dim=1).float()  # (40, 3) multi-hot
    train = TensorVideoDataset(x, y)
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    h = fit(model, train, train, TrainConfig(epochs=3, batch_size=8, lr=0.05, multilabel=True, device="cpu"),
            progress=False)
    assert "val_video_map" in h[-1] and "train_acc" not in h[-1] and "val_video_top1" not in h[-1]
    res = evaluate(model, train, device="cpu", multilabel=True)
    assert h[-1]["val_video_map"] == pytest.approx(mean_average_precision(res.video_scores, y))
    assert h[-1]["val_video_map"] > 0.8


# --------------------------------------------------------------------------- torchrun

@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """2 processes x batch 4 (gloo) take the same global batches as 1 process x batch 8."""
    one_history, one_state = _ddp_worker.run(batch_size=8)
    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(_ddp_worker.__file__)), str(out), "4"]
    # its own session, so that a hang can be ended with all of torchrun's workers
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in 180 s:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    two = torch.load(out, weights_only=False)
    assert two["world"] == 2
    for name, p in one_state.items():
        torch.testing.assert_close(two["state"][name], p, rtol=1e-5, atol=1e-6, msg=name)
    assert len(two["history"]) == len(one_history) == 3
    for r1, r2 in zip(one_history, two["history"]):
        for k in ("train_loss", "val_loss", "train_acc", "val_clip_top1", "val_video_top1", "lr"):
            assert r2[k] == pytest.approx(r1[k], rel=1e-5, abs=1e-6), k


# --------------------------------------------------------------------------- TensorVideoDataset

class TwoInputs(nn.Module):
    def forward(self, a, b):          # (B, C), (B, C)
        return a + b                  # (B, C)


def test_tensor_video_dataset_from_videos_and_tuple_inputs():
    clips = [torch.zeros(3, 2), torch.ones(1, 2), torch.full((2, 2), 2.0)]  # 3 videos of 3, 1, 2 clips
    ds = TensorVideoDataset.from_videos(clips, torch.tensor([1, 0, 1]))
    assert len(ds) == 6
    assert [ds[i][2] for i in range(6)] == [0, 0, 0, 1, 2, 2]
    assert [int(ds[i][1]) for i in range(6)] == [1, 1, 1, 0, 1, 1]
    with pytest.raises(ValueError, match="clips_per_video=4 does not divide the 6 items"):
        TensorVideoDataset(torch.zeros(6, 2), torch.zeros(6), clips_per_video=4)

    # x as a tuple -> model(*x): logits a + b, video 0 = items 0, 1
    a = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    ds = TensorVideoDataset((a, b), torch.tensor([0, 0, 1]), video_index=[0, 0, 1])
    res = evaluate(TwoInputs(), ds, device="cpu")
    torch.testing.assert_close(res.clip_logits, a + b)
    assert res.clip["top1"] == pytest.approx(2 / 3) and res.video["top1"] == pytest.approx(1.0)
