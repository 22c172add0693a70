"""What does the residual connection of the Res-LSTM cost? (Lakhal et al., paper 000, Eq. 1)

Times one batch at the paper's sizes (features PCA-reduced to d_m = hidden 1024, 2 layers,
T = 25 clip features, batch 32, 101 classes), forward (eval mode, no autograd) and
forward+backward (train mode), for

- "stacked LSTM": torch.nn.LSTM(num_layers=L) + the classifier on the last step (baseline);
- "Res-LSTM, residual off": our ResLSTM (L one-layer LSTMs) with residual=False;
- "Res-LSTM": our ResLSTM with the residual additions of Eq. 1,

and prints each model's median time and its ratio to the stacked LSTM (1.03 = 3 % slower).
The residual adds L element-wise additions of (B, T, H) tensors to L LSTM layers, so the
expected cost is a few per cent at most.

    python benchmarks/res_lstm.py                   # CPU, and CUDA if there is one
    python benchmarks/res_lstm.py --device cpu --threads 1 --clock cpu   # on a busy machine
"""

from __future__ import annotations

import argparse
import platform

import torch
from torch import Tensor, nn

from _timing import devices, machine_cores, quartiles, step, time_interleaved, write_csv
from actionbook.models.res_lstm import res_lstm


class _StackedLSTM(nn.Module):
    """torch.nn.LSTM(num_layers=L) classified from its last output, like Eq. 2."""

    def __init__(self, size: int, num_layers: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(size, size, num_layers, batch_first=True)
        self.fc = nn.Linear(size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)  # (B, T, H)
        return self.fc(out[:, -1])  # (B, P)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--hidden-size", type=int, default=1024, help="= the PCA feature size d_m")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--time", type=int, default=25, help="time steps T (clip features)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=101)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=machine_cores(),
                        help="torch CPU threads (default: this machine's cores)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time; cpu: process CPU time (with --threads 1, "
                             "on a busy machine)")
    parser.add_argument("--csv", help="also write the timings to this CSV file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    H, L, T, B, P = args.hidden_size, args.num_layers, args.time, args.batch, args.num_classes
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} CPU threads; d_m = hidden {H}, {L} layers, T={T}, batch {B}, "
          f"{P} classes; {args.clock} clock, median of {args.repeats} "
          f"(after {args.warmup} warm-up), interleaved")
    rows = []
    for device in devices(args.device):
        models: dict[str, nn.Module] = {
            "stacked LSTM (torch.nn.LSTM)": _StackedLSTM(H, L, P),
            "Res-LSTM, residual off": res_lstm(input_size=H, hidden_size=H, num_layers=L,
                                               num_classes=P, residual=False),
            "Res-LSTM": res_lstm(input_size=H, hidden_size=H, num_layers=L, num_classes=P),
        }
        x = torch.randn(B, T, H, device=device)
        if device == "cuda":
            print(f"\n{torch.cuda.get_device_name()}")
        for backward in (False, True):
            pass_name = "forward+backward" if backward else "forward"
            fns = {name: step(m.to(device), x, backward=backward) for name, m in models.items()}
            times = time_interleaved(fns, device=device, repeats=args.repeats, warmup=args.warmup,
                                     clock=args.clock)
            base = quartiles(times["stacked LSTM (torch.nn.LSTM)"])[1]
            print(f"\n{device}, {pass_name}")
            print(f"{'model':30s} {'median ms':>10s} {'IQR ms':>15s} {'model/stacked':>14s}")
            for name, ts in times.items():
                q1, med, q3 = quartiles(ts)
                print(f"{name:30s} {med * 1e3:10.1f} {q1 * 1e3:7.1f}–{q3 * 1e3:7.1f} "
                      f"{med / base:14.3f}")
                rows.append(dict(device=device, threads=args.threads, passes=pass_name, model=name,
                                 hidden_size=H, num_layers=L, time=T, batch=B,
                                 median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3,
                                 model_over_stacked=med / base, repeats=args.repeats,
                                 clock=args.clock, torch=torch.__version__))
            res_on = quartiles(times["Res-LSTM"])[1]
            res_off = quartiles(times["Res-LSTM, residual off"])[1]
            print(f"the residual additions alone: Res-LSTM / residual off = {res_on / res_off:.3f}")
    if args.csv:
        write_csv(rows, args.csv)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
