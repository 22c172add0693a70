"""Full mode on a CUDA machine, in one command: what each stage costs, projected to UCF-101.

    benchmarks/gpu_full.sh                 # the same as .venv/bin/python benchmarks/gpu_full.py
    benchmarks/gpu_full.sh --classes 5     # smaller and quicker
    benchmarks/gpu_full.sh --dry-run-cpu --frames 2 --skip flow,notebook   # check the script on a CPU

It needs a CUDA device and stops at once, with one line saying so, without one. It then

1. writes a stated subset of the generated benchmark's `full` preset in UCF-101's official layout
   (`actionbook.data.layouts.write_ucf101`): `--classes` UCF-101 class names x (`--train` +
   `--test`) videos of `--frames` frames at the full preset's 320 x 240, real MPEG-4 files;
2. puts *randomly initialised* weights under torchvision's official file names in a private
   `$TORCH_HOME` (no download is possible, and timings do not depend on weight values): no
   accuracy is printed, none would mean anything;
3. times the stages of the MRRN chapter's full mode (ResNet-34 layer2/3/4 features of every
   frame of MRRN's clips, 10 crops for training, then SRU heads):

   | stage | what is timed |
   | --- | --- |
   | decode | PyAV decoding of every frame of every video |
   | flow | TV-L1 (OpenCV, CPU processes: the pip wheel has no CUDA TV-L1) on `--flow-videos` videos: Res-LSTM's flow stream (MRRN reads no flow) |
   | extract | `mrrn.features(cfg)`: decode, resize, 10 crops, ResNet-34 cut at layer2/3/4, cache writes |
   | in memory | the same three cut networks on uint8 frames already in GPU memory, fp32 and bf16 autocast |
   | train | the default high-level RRN (3 x 1024 SRU), `--epochs` epochs, through `engine.fit` under `torchrun --nproc_per_node 1` (nccl), bf16 autocast (`TrainConfig.amp`) |
   | evaluate | (part of the train stage) the same model on the test clips, bf16 autocast |
   | notebook | `book/mrrn/experiments.md` end to end in full mode (`-p epochs E -p seeds 1`) through the runner, on the cache the stages above filled |

4. prints one table: seconds, work, rate, peak GPU memory, and the projection of each stage to
   UCF-101 (13,320 videos of about 182 frames: 27 hours at 25 fps; split 1: 9,537 training and
   3,783 test videos; MRRN's paper schedule: 12 epochs of up to 20 clips per video).

Skipped, and said so in the output: Res-LSTM's R(2+1)D-18 10-crop features (MRRN is the chapter
run here), bf16 in feature extraction (`extract_features` computes in fp32; the in-memory rows
show what bf16 would gain), and the real weights' accuracy. The defaults (10 classes x 5 videos
of 150 frames, 2 epochs) are sized to fit in ten minutes on a GPU machine with 16 CPU cores; on
an H200 (2026-12-04) everything but `flow` and `notebook` took 61 s, writing the data included
(benchmarks/decisions/0018 has the table). TV-L1 (CPU) and the notebook stage, not yet timed on a
GPU machine, are the longest: `--flow-videos` and `--skip notebook` shorten them.

Multi-GPU: full mode trains through `torchrun` (`engine.fit` joins the process group: nccl on
GPUs), the path this script's train stage takes with one process. On N GPUs, train with
`torchrun --standalone --nproc_per_node N` (`--gpus N` here runs the train stage so); the global
batch is N x the per-process batch (see `actionbook.engine`).

`--dry-run-cpu` runs the same stages on the CPU (gloo instead of nccl, no autocast) to check the
script and its table; its numbers say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("decode", "flow", "extract", "memory", "train", "notebook")  # "train" also evaluates
UCF101_VIDEOS, UCF101_FRAMES = 13_320, 182        # 27 hours at 25 fps over 13,320 clips (Soomro et al.)
UCF101_TRAIN, UCF101_TEST = 9_537, 3_783          # split 1
MRRN_EPOCHS, MRRN_CLIPS = 12, 20                   # the paper's schedule; up to 20 clips per video


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/gpu_full.sh", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=10, help="UCF-101 class names used (default 10)")
    p.add_argument("--train", type=int, default=4, help="training videos per class, at most 18 (default 4)")
    p.add_argument("--test", type=int, default=1, help="test videos per class, at most 7 (default 1)")
    p.add_argument("--frames", type=int, default=150, help="frames per video (default 150; UCF-101's mean is ~182)")
    p.add_argument("--flow-videos", type=int, default=4, help="videos whose TV-L1 flow is timed (default 4)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the train stage and the notebook (default 2)")
    p.add_argument("--gpus", type=int, default=1, help="torchrun processes of the train stage (default 1)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="decoding / flow processes (default: min(8, cores))")
    p.add_argument("--skip", default="", help=f"comma-separated stages to leave out: {','.join(STAGES)}")
    p.add_argument("--out", type=Path, help="keep data, caches and results here (default: a temporary folder)")
    p.add_argument("--dry-run-cpu", action="store_true",
                   help="run on the CPU (gloo, no autocast) to check the script; the numbers mean nothing for a GPU")
    p.add_argument("--_train-worker", dest="train_worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.skip = {s for s in args.skip.split(",") if s}
    for name, lo, hi in (("classes", 2, 101), ("train", 1, 18), ("test", 1, 7), ("frames", 2, 10_000),
                         ("flow_videos", 1, 10_000), ("epochs", 1, 1_000), ("gpus", 1, 64), ("workers", 1, 256)):
        if not lo <= getattr(args, name) <= hi:
            p.error(f"--{name.replace('_', '-')} must be in {lo}..{hi} (UCF-101 split 1 has 18 training and 7 test "
                    f"groups, 101 classes), got {getattr(args, name)}")
    if args.skip - set(STAGES):
        p.error(f"--skip: unknown stage(s) {sorted(args.skip - set(STAGES))}; the stages are {', '.join(STAGES)}")
    return args


def no_cuda_message() -> str | None:
    """The one-line refusal when there is no CUDA device, else None."""
    import torch

    if torch.cuda.is_available():
        return None
    return ("gpu_full: no CUDA device (torch.cuda.is_available() is False): run this on a machine with an "
            "NVIDIA GPU, or pass --dry-run-cpu to check the script on the CPU")


# --------------------------------------------------------------------------- the table

def projection(stage: str, seconds: float, work: float) -> float | None:
    """Seconds the stage would take on UCF-101 split 1 at the measured rate (`work` units timed)."""
    if not work:
        return None
    per = seconds / work
    full = {"decode": UCF101_VIDEOS * UCF101_FRAMES,                  # frames
            "flow": UCF101_VIDEOS * (UCF101_FRAMES - 1),              # frame pairs
            # crop-frames through the three cut networks: 10 crops for training, the centre for testing
            "extract": 3 * UCF101_FRAMES * (10 * UCF101_TRAIN + UCF101_TEST),
            "train": UCF101_TRAIN * MRRN_CLIPS * MRRN_EPOCHS,         # clip-epochs of one RRN
            "evaluate": UCF101_TEST * MRRN_CLIPS}.get(stage)         # clips
    return None if full is None else per * full


def table(rows: list[dict]) -> str:
    """The stage table as text: stage, seconds, work, rate, peak GPU memory, UCF-101 projection."""
    def hours(s: float | None) -> str:
        return "—" if s is None else (f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min")

    head = ["stage", "seconds", "work", "rate", "peak GPU MiB", "UCF-101 (13,320 videos)"]
    body = []
    for r in rows:
        if r.get("skipped"):
            body.append([r["stage"], "skipped", r["skipped"], "", "", ""])
            continue
        rate = f"{r['work'] / r['seconds']:,.1f} {r['unit']}/s" if r.get("work") and r["seconds"] > 0 else "—"
        mem = f"{r['peak_mib']:,.0f}" if r.get("peak_mib") is not None else "—"
        work = f"{r['work']:,} {r['unit']}" if r.get("work") else r.get("unit", "")
        projected = projection(r.get("key", r["stage"]), r["seconds"], r.get("work", 0))
        body.append([r["stage"], f"{r['seconds']:.1f}", work, rate, mem, hours(projected)])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


# --------------------------------------------------------------------------- the stages

def _peak(reset: bool = False) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def setup(args: argparse.Namespace, base: Path) -> Path:
    """The environment of a full-mode run in `base`, the data written, random weights in place."""
    from actionbook.categories import ucf101_action_types
    from actionbook.data import layouts
    from actionbook.features import backbones as B

    os.environ.update(ACTIONBOOK_DATA=str(base / "data"), ACTIONBOOK_CACHE=str(base / "cache"),
                      ACTIONBOOK_RESULTS=str(base / "results"), TORCH_HOME=str(base / "torch"))
    classes = list(ucf101_action_types())[: args.classes]
    root = base / "data" / "ucf101"
    if not (root / "ucfTrainTestlist" / "testlist01.txt").is_file():
        layouts.write_ucf101(root, classes=classes, train=args.train, test=args.test, frames=args.frames)
    B.save_random_weights("resnet34")
    return root


def stage_decode(root: Path) -> dict:
    from actionbook.data.video import read_video

    videos = sorted((root / "UCF-101").rglob("*.avi"))
    t0 = time.perf_counter()
    frames = sum(len(read_video(v)) for v in videos)
    return {"seconds": time.perf_counter() - t0, "work": frames, "unit": "frames"}


def stage_flow(root: Path, args: argparse.Namespace, base: Path) -> dict:
    from actionbook.data.flow import extract_flow
    from actionbook.data.video import probe

    videos = sorted((root / "UCF-101").rglob("*.avi"))[: args.flow_videos]
    pairs = sum(probe(v).num_frames - 1 for v in videos)
    t0 = time.perf_counter()
    extract_flow(videos, method="tvl1", cache=base / "flow-bench", workers=args.workers, progress=False)
    return {"seconds": time.perf_counter() - t0, "work": pairs, "unit": "frame pairs"}


def stage_extract(cfg) -> dict:
    from actionbook.experiments import mrrn as M

    _peak(reset=True)
    t0 = time.perf_counter()
    feats = M.features(cfg, progress=False)
    seconds = time.perf_counter() - t0
    crops = {"train": 10 if cfg.train_crops == "10" else 1, "test": 10 if cfg.test_crops == "10" else 1}
    work = sum(sum(len(x) for x in fs.features) * crops[sub] for lv in feats.values() for sub, fs in lv.items())
    return {"seconds": seconds, "work": work, "unit": "crop-frames", "peak_mib": _peak()}


def stage_memory(cfg, device: str, *, batch: int = 128, repeats: int = 20) -> list[dict]:
    """The three cut ResNet-34s on uint8 frames already on the device: fp32 and bf16 autocast
    (defaults: 20 x 3 batches of 128, about a second on an H200; 5 x 3 of 64 took 0.1 s there,
    too short to time)."""
    import torch

    from actionbook.experiments import mrrn as M
    from actionbook.features import backbones as B

    nets = [B.backbone(cfg.backbone, layer=M.LAYER_OF[lv], weights="DEFAULT", mode="full").to(device) for lv in M.LEVELS]
    x = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
    rows = []
    for name, amp in (("in memory, fp32", False), ("in memory, bf16", True)):
        if amp and device != "cuda":
            rows.append({"stage": name, "skipped": "bf16 autocast: CUDA only"})
            continue
        _peak(reset=True)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            for net in nets:
                net(x.float() / 255)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(repeats):
                for net in nets:
                    net(x.float() / 255)
            if device == "cuda":
                torch.cuda.synchronize()
        rows.append({"stage": name, "key": "extract", "seconds": time.perf_counter() - t0,
                     "work": repeats * batch * len(nets), "unit": "crop-frames", "peak_mib": _peak()})
    return rows


def train_worker(out: Path) -> None:
    """Runs under torchrun: fit and evaluate the default high-level RRN on the cached features."""
    import torch

    from actionbook import engine
    from actionbook.experiments import mrrn as M

    spec = json.loads(os.environ["GPU_FULL_SPEC"])
    cfg = M.config("full", epochs=spec["epochs"])
    runs = M.Runs(M.features(cfg, progress=False), cfg, progress=False, cache=False)
    key = runs.default("high", 0)
    train_ds, test_ds = runs.datasets("high")
    amp = torch.cuda.is_available()
    tc = replace(runs.train_config(key), amp=amp)
    torch.manual_seed(0)
    model = runs.model(key)
    _peak(reset=True)
    t0 = time.perf_counter()
    engine.fit(model, train_ds, None, tc, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.evaluate(model, test_ds, batch_size=cfg.eval_batch_size, device=tc.device, amp=amp)
    eval_s = time.perf_counter() - t0
    if int(os.environ.get("RANK", 0)) == 0:
        out.write_text(json.dumps({"train_s": train_s, "eval_s": eval_s, "train_items": len(train_ds) * cfg.epochs,
                                   "test_items": len(test_ds), "peak_mib": _peak(),
                                   "world": int(os.environ.get("WORLD_SIZE", 1)), "amp": amp}))


def stage_train(args: argparse.Namespace, base: Path) -> list[dict]:
    out = base / "train.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["GPU_FULL_SPEC"] = json.dumps({"epochs": args.epochs})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.gpus),
           str(Path(__file__).resolve()), "--_train-worker", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gpu_full: the train stage failed under torchrun:\n{r.stderr[-3000:]}")
    t = json.loads(out.read_text())
    backend = f"{t['world']} process(es), {'nccl, bf16' if t['amp'] else 'gloo, fp32'}"
    return [{"stage": f"train ({backend})", "key": "train", "seconds": t["train_s"], "work": t["train_items"],
             "unit": "clip-epochs", "peak_mib": t["peak_mib"]},
            {"stage": "evaluate", "key": "evaluate", "seconds": t["eval_s"], "work": t["test_items"], "unit": "clips",
             "peak_mib": t["peak_mib"]}]


def stage_notebook(args: argparse.Namespace, base: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "actionbook", "run", "--mode", "full", "--no-progress", "--out",
                        str(base / "executed"), "-p", "epochs", str(args.epochs), "-p", "seeds", "1",
                        "book/mrrn/experiments.md"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gpu_full: book/mrrn/experiments.md failed in full mode:\n{r.stderr[-3000:]}")
    return {"seconds": time.perf_counter() - t0, "unit": "15 RRNs x 1 seed, end to end"}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.train_worker is not None:
        train_worker(args.train_worker)
        return 0
    if not args.dry_run_cpu and (msg := no_cuda_message()):
        print(msg, file=sys.stderr)
        return 2
    import torch

    from actionbook.experiments import mrrn as M

    device = "cpu" if args.dry_run_cpu else "cuda"
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="gpu-full-")
    base = args.out or Path(tmp.name)
    t_all = time.perf_counter()
    rows: list[dict] = []

    def add(name: str, fn) -> None:
        if name in args.skip:
            rows.append({"stage": name, "skipped": "--skip"})
            return
        got = fn()
        for r in got if isinstance(got, list) else [got]:
            rows.append({"stage": name, **r})
    try:
        t0 = time.perf_counter()
        root = setup(args, base)
        videos = args.classes * (args.train + args.test)
        print(f"data: {videos} videos of {args.frames} frames at 320x240 in UCF-101's layout "
              f"({time.perf_counter() - t0:.0f} s to write); random ResNet-34 weights (timings only)", file=sys.stderr)
        cfg = replace(M.config("full"), device=device, extract_workers=min(args.workers, 4))
        add("decode", lambda: stage_decode(root))
        add("flow", lambda: stage_flow(root, args, base))
        add("extract", lambda: stage_extract(cfg))
        add("memory", lambda: stage_memory(cfg, device, **({"batch": 2, "repeats": 1} if args.dry_run_cpu else {})))
        add("train", lambda: stage_train(args, base))
        add("notebook", lambda: stage_notebook(args, base))
    finally:
        if tmp is not None:
            tmp.cleanup()
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (--dry-run-cpu: CPU numbers, not a GPU's)"
    print(f"\nfull mode, MRRN chapter; GPU: {gpu}; CPU cores: {os.cpu_count()}; "
          f"total {time.perf_counter() - t_all:.0f} s\n")
    print(table(rows))
    print("\nnot run: Res-LSTM's R(2+1)D-18 10-crop features; bf16 in extract_features (fp32 only); "
          "accuracy (random weights)" + (f"; skipped by --skip: {', '.join(sorted(args.skip))}" if args.skip else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
