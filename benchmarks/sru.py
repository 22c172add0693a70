"""How fast is our SRU against torch.nn.LSTM and torch.nn.GRU? (MRRN, paper 001, Sec. 3.2 and 5.3)

The paper says the SRU "operates three times as fast as LSTM". This script times, at the
paper's sizes (input 512, hidden 1024, 3 layers, 30-frame clips, batch 28):

- forward:          eval mode, no autograd (inference on one batch);
- forward+backward: train mode, the backward of a scalar loss (one training batch),

for torch.nn.LSTM, torch.nn.GRU, our SRU (`actionbook.models.sru`: one matrix product for
the three projections, then the element-wise scan), and the same SRU computed step by step
(`sru_layer_reference`, Eq. 2–6 literally, with a small matrix product per step). It prints
the median time of each and the ratio LSTM time / model time (> 1: faster than the LSTM),
beside the ratio of their multiply-adds per time step, which bounds the speed-up a model can
get from doing less arithmetic.

    python benchmarks/sru.py                      # CPU, and CUDA if there is one
    python benchmarks/sru.py --device cpu --repeats 20 --csv results/bench/sru.csv
    python benchmarks/sru.py --device cpu --threads 1 --clock cpu   # on a busy machine
"""

from __future__ import annotations

import argparse
import platform

import torch
from torch import Tensor, nn

from _timing import devices, machine_cores, matmul_params, quartiles, step, time_interleaved, write_csv
from actionbook.models.sru import SRU, sru, sru_layer_reference


class _ReferenceSRU(nn.Module):
    """The SRU's weights run through `sru_layer_reference`: one time step at a time."""

    def __init__(self, model: SRU) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        h = x.transpose(0, 1)  # (T, B, I)
        for layer in self.model.layers:
            h, _ = sru_layer_reference(h, layer.weight, layer.bias)
        return h.transpose(0, 1)  # (B, T, H)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument("--hidden-size", type=int, default=1024)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--time", type=int, default=30, help="time steps (frames per clip)")
    parser.add_argument("--batch", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=machine_cores(),
                        help="torch CPU threads (default: this machine's cores)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time; cpu: process CPU time (with --threads 1, "
                             "on a busy machine)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the slow step-by-step SRU")
    parser.add_argument("--csv", help="also write the timings to this CSV file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    I, H, L, T, B = args.input_size, args.hidden_size, args.num_layers, args.time, args.batch
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} CPU threads; input {I}, hidden {H}, {L} layers, T={T}, batch {B}; "
          f"{args.clock} clock, median of {args.repeats} (after {args.warmup} warm-up), interleaved")
    rows = []
    for device in devices(args.device):
        models: dict[str, nn.Module] = {
            "LSTM (torch.nn.LSTM)": nn.LSTM(I, H, L, batch_first=True),
            "GRU (torch.nn.GRU)": nn.GRU(I, H, L, batch_first=True),
            "SRU (ours)": sru(input_size=I, hidden_size=H, num_layers=L, dropout=0.5),
        }
        if not args.no_reference:
            models["SRU, step by step (reference)"] = _ReferenceSRU(models["SRU (ours)"])
        macs = {name: matmul_params(m) for name, m in models.items()}
        x = torch.randn(B, T, I, device=device)
        if device == "cuda":
            print(f"\n{torch.cuda.get_device_name()}")
        for backward in (False, True):
            pass_name = "forward+backward" if backward else "forward"
            fns = {name: step(m.to(device), x, backward=backward) for name, m in models.items()}
            times = time_interleaved(fns, device=device, repeats=args.repeats, warmup=args.warmup,
                                     clock=args.clock)
            lstm_time = quartiles(times["LSTM (torch.nn.LSTM)"])[1]
            print(f"\n{device}, {pass_name}")
            print(f"{'model':32s} {'median ms':>10s} {'IQR ms':>15s} {'LSTM/model':>11s} "
                  f"{'LSTM/model multiply-adds':>25s}")
            for name, ts in times.items():
                q1, med, q3 = quartiles(ts)
                ratio = lstm_time / med
                mac_ratio = macs["LSTM (torch.nn.LSTM)"] / macs[name]
                print(f"{name:32s} {med * 1e3:10.1f} {q1 * 1e3:7.1f}–{q3 * 1e3:7.1f} {ratio:11.2f} "
                      f"{mac_ratio:25.2f}")
                rows.append(dict(device=device, threads=args.threads, passes=pass_name, model=name,
                                 input_size=I, hidden_size=H, num_layers=L, time=T, batch=B,
                                 median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3,
                                 lstm_over_model=ratio, lstm_over_model_macs=mac_ratio,
                                 repeats=args.repeats, clock=args.clock, torch=torch.__version__))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
