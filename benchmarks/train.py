"""How much does the training engine cost? Sequences per second of a recurrent head.

A 2-layer LSTM (hidden 512) with a linear classifier on its last step, on random tensors
shaped like cached clip features (B=32 sequences of T=25 steps of D=512), timed three ways
for training (forward + backward + optimizer step) and two ways for inference:

    raw           a bare loop over pre-batched tensors (the floor)
    raw+loader    the bare loop, fed by the same DataLoader the engine uses
    engine        `actionbook.engine.train_one_epoch` / `evaluate`

`engine / raw` is the engine's whole overhead, `engine / raw+loader` the loop's own. On a
busy machine these ratios are noisy, so the script also profiles one engine epoch and prints
the time spent in the engine's own Python code (`actionbook/engine.py`, callees excluded),
a figure that does not depend on what else the machine is doing.

    python benchmarks/train.py                     # defaults above, on cuda if available
    python benchmarks/train.py --device cpu --batches 10 --repeats 2
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from actionbook.engine import TensorVideoDataset, evaluate, train_one_epoch


class LSTMHead(nn.Module):
    def __init__(self, d: int, hidden: int, layers: int, classes: int):
        super().__init__()
        self.lstm = nn.LSTM(d, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        out, _ = self.lstm(x)                             # (B, T, H)
        return self.fc(out[:, -1])                        # (B, C)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fns: dict, *, n: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Sequences/s of each function (each processes n sequences): the fastest of `repeats`
    runs, taken in turns (a, b, c, a, b, c, ...) so that a busy machine slows all alike."""
    for fn in fns.values():
        fn()  # warm-up (allocations, cuDNN plans)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: n / t for name, t in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--T", type=int, default=25)
    p.add_argument("--D", type=int, default=512)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--batches", type=int, default=20, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args()

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.batch * args.batches
    x = torch.randn(n, args.T, args.D)                                   # (N, T, D)
    y = torch.randint(0, args.classes, (n,))
    ds = TensorVideoDataset(x, y)
    model = LSTMHead(args.D, args.hidden, args.layers, args.classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, pin_memory=device.type == "cuda")
    batches = [(x[i:i + args.batch].to(device), y[i:i + args.batch].to(device)) for i in range(0, n, args.batch)]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if args.amp and device.type == "cuda" else None

    def step(xb, yb):
        if amp:
            with amp:
                logits = model(xb)
        else:
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def raw_train():
        model.train()
        for xb, yb in batches:
            step(xb, yb)

    def loader_train():
        model.train()
        for xb, yb, _ in loader:
            step(xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))

    def engine_train():
        train_one_epoch(model, loader, opt, device=device, amp=args.amp)

    @torch.no_grad()
    def raw_infer():
        model.eval()
        for xb, _ in batches:
            if amp:
                with amp:
                    model(xb).float().softmax(1).cpu()
            else:
                model(xb).softmax(1).cpu()

    def engine_infer():
        evaluate(model, ds, batch_size=args.batch, device=device, amp=args.amp)

    print(f"device {device} ({torch.get_num_threads()} CPU threads), amp {args.amp}; "
          f"LSTM {args.layers}x{args.hidden} on (B={args.batch}, T={args.T}, D={args.D}), "
          f"{args.batches} batches per epoch, best of {args.repeats}")
    r = _timed({"train raw": raw_train, "train raw+loader": loader_train, "train engine": engine_train,
                "infer raw": raw_infer, "infer engine": engine_infer}, n=n, repeats=args.repeats, device=device)
    for k, v in r.items():
        print(f"  {k:<18} {v:10.1f} sequences/s")
    print(f"  train: engine / raw {r['train engine'] / r['train raw']:.3f}, "
          f"engine / raw+loader {r['train engine'] / r['train raw+loader']:.3f}")
    print(f"  infer: engine / raw {r['infer engine'] / r['infer raw']:.3f}")

    prof = cProfile.Profile()
    _sync(device)
    prof.enable()
    engine_train()
    _sync(device)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (calls, prim calls, tottime, cumtime, callers)
    total = sum(v[2] for v in stats.values())
    own = sum(v[2] for k, v in stats.items() if k[0].endswith("engine.py") and k[2] != "__getitem__")
    items = sum(v[2] for k, v in stats.items() if k[0].endswith("engine.py") and k[2] == "__getitem__")
    print(f"  profile of one engine epoch: engine's own code {1e3 * own / args.batches:.3f} ms/batch "
          f"({100 * own / total:.2f}% of the epoch); dataset __getitem__ {1e3 * items / args.batches:.3f} ms/batch "
          "(paid by raw+loader too)")


if __name__ == "__main__":
    main()
