"""Frozen torchvision backbones: the feature extractors every chapter shares.

Each paper reads a different place of a pretrained network:

| paper | backbone | where it reads | what it gets |
| --- | --- | --- | --- |
| Res-LSTM (Lakhal et al.) | C3D (Sports-1M) / TSN | fc6 of 16-frame clips | one vector per clip |
| MRRN (Zheng et al.) | ResNet-34 (ImageNet) | after layer2 / layer3 / layer4, pooled | 128 / 256 / 512-d per frame |
| Relational LSTM (Chen et al.) | ResNet-101-v2 (ImageNet) | after conv5_1 / conv5_2 | 2048 x 7 x 7 maps |
| Iqbal et al. | ResNet-50 (ImageNet) | after block2 / 3 / 4, pooled; maps after block3 | vectors; block4 is trained |

`backbone(name, layer=..., modality=..., weights=...)` returns a *frozen* module (eval mode,
no gradients) that maps a batch of frames `(N, C, H, W)` -- or of clips `(N, C, T, H, W)` for
the 3D CNNs -- with values in [0, 1] to features `(N, D)` or maps `(N, D, h, w)`. The module
normalises its input itself, with the mean/std of its weights' own `transforms()` metadata.

Layer names (torchvision's, so a reader can find them in the model's code):

- `layer1` ... `layer4`: the output of that stage, global-average-pooled -> `(N, D)`.
  MRRN's low/mid/high levels are `layer2`/`layer3`/`layer4`; Iqbal's block2/3/4 likewise.
- `layer1_map` ... `layer4_map`: the same, unpooled -> `(N, D, h, w)`. `layer3_map` is the
  input of block4, on which Iqbal et al. train block4 with temporal skip connections.
- `conv5_1_map`, `conv5_2_map`, `conv5_3_map`: after the 1st / 2nd / 3rd residual unit of
  conv5_x (= `layer4[0]`, `layer4[1]`, `layer4[2]`), where the Relational LSTM reads.
- `layer1.0_map` ... `layer4.2_map`: after one residual unit, named as torchvision names it
  (`layer2.1` is the 2nd unit of stage 2), unpooled. The Relational LSTM chapter's ci reads
  `layer1.1`, `layer2.0` and `layer2.1`, the last three units that still give >= 7 x 7 maps at 56 px.
- `stem_map`: after the stem (conv1, bn1, relu, maxpool), the map entering `layer1.0`. With the
  unit maps it names the input of every residual unit, where Iqbal et al.'s temporal skips
  start training (`models.recurrent_residual`).
- `pool` (3D CNNs): the global-average-pooled output of the last stage, 512-d per clip (ci: 8 x
  the ci width, 256-d).

Stand-ins, named so the book can say them:

- ResNet-101-v2 (pre-activation) -> torchvision `resnet101` (post-activation ResNet-101);
  C3D (Sports-1M) and TSN features -> torchvision `r2plus1d_18` / `r3d_18` with Kinetics-400
  weights (`KINETICS400_V1`), 512-d per 16-frame clip instead of C3D's 4096-d fc6.
- `mode="ci"` has no ImageNet, and a frozen random network would make every comparison
  meaningless. So ci uses the same families at toy size: **ResNet-18** at 56x56 input (64x64 frames, cropped) for
  every 2D ResNet (34, 50 and 101; ResNet-18 has the same four stages as ResNet-34, and only
  two units in conv5_x, so `conv5_3_map` does not exist in ci), every stage narrowed to half
  width (32-64-128-256 channels, `pretrain.PretrainConfig.width`: four times cheaper, and as
  good on the pretraining's held-out stills, `benchmarks/decisions/0013`), with
  weights from a brief supervised training on the generated benchmark's static images
  (`actionbook.features.pretrain`); and for both 3D CNNs, a **3D ResNet-18 inflated from
  that ResNet-18** (I3D's recipe, Carreira & Zisserman 2017: every k x k kernel becomes
  3 x k x k, divided by 3), i.e. torchvision's `r3d_18` with the 2D network's max-pool kept
  in its stem and time padded by repeating the edge frames, **then trained on generated
  video** as I3D is on Kinetics: its top stages (from `layer3` for RGB, from `layer2` for flow;
  `pretrain.CLIP_CONFIGS`) and a head the features never use learn to name motion
  primitives -- in pairs that are each other's reverse in time -- in clips of their own
  (`pretrain.pretrain_clips`, `generate.motion_clips`). Inflation alone would give
  a temporal blur of the 2D features, symmetric in time, blind to a motion's direction within
  a clip. Each modality has its own network: the flow one has TSN's cross-modality stem and
  learns on the clips' optical flow.

Optical flow ("flow" modality, TSN's cross-modality initialisation, Wang et al. 2016): the
first convolution's weights are averaged over the RGB channels and repeated over the 2L
stacked flow channels (x, y interleaved) of a 2D network, or over the 2 flow channels of a
3D network; the input normalisation becomes mean 0.5 and std = the mean of the RGB stds.

Weights are found offline. torchvision looks for `$TORCH_HOME/hub/checkpoints/<file name of the
weights URL>`; when that file is missing, `MissingWeightsError` says which enum, the exact file
name, where to put it, and the URL to fetch it from on a machine with internet. (torchvision's
`check_hash=True` verifies the hash prefix in the file name only while *downloading*; a file
already in place is loaded as it is, and a wrong file shows up as a state_dict mismatch.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Sequence
from urllib.parse import urlparse

import torch
import torch.nn as nn

from actionbook.features import pretrain

if TYPE_CHECKING:
    from torchvision.models import ResNet
    from torchvision.models._api import WeightsEnum
    from torchvision.models.video import VideoResNet

# torchvision (and `ci_nets`, which subclasses its networks) is imported where a network is built:
# importing it costs about 1.5 s, which a page that only reads cached features and runs never needs.

MODALITIES = ("rgb", "flow")


class MissingWeightsError(FileNotFoundError):
    """A pretrained weights file is not where torchvision looks for it (no internet here)."""


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone family: how to build it in full mode, and what stands in for it in ci.

    `resize`/`crop` in full mode come from the weights' own `transforms()`; in ci they are
    the toy sizes: the generated benchmark's native 64 px, cropped to 56 (the same 8:7 ratio
    as 256:224 for ImageNet and 128:112 for Kinetics), so ci frames are never resampled.
    """

    name: str                          # its torchvision builder: torchvision.models(.video).<name>
    kind: str                          # "frame" (2D, input (N, C, H, W)) or "clip" (3D, (N, C, T, H, W))
    weights_enum: str                  # the name of its weights enum in the same torchvision module
    ci_substitute: str                 # what ci uses instead, in words (the book quotes it)
    ci_resize: int
    ci_crop: int

    def _module(self) -> ModuleType:
        import torchvision  # here, not at the top (see above)

        return torchvision.models.video if self.kind == "clip" else torchvision.models

    @property
    def build(self) -> Callable[..., nn.Module]:
        """torchvision's builder for full mode, e.g. `torchvision.models.resnet50`."""
        return getattr(self._module(), self.name)

    @property
    def weights(self) -> type[WeightsEnum]:
        """Its weights enum, e.g. `torchvision.models.ResNet50_Weights`."""
        return getattr(self._module(), self.weights_enum)


SPECS: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec("resnet18", "frame", "ResNet18_Weights", "ResNet-18 (ci-pretrained)", 64, 56),
    "resnet34": BackboneSpec("resnet34", "frame", "ResNet34_Weights", "ResNet-18 (ci-pretrained)", 64, 56),
    "resnet50": BackboneSpec("resnet50", "frame", "ResNet50_Weights", "ResNet-18 (ci-pretrained)", 64, 56),
    "resnet101": BackboneSpec("resnet101", "frame", "ResNet101_Weights", "ResNet-18 (ci-pretrained)", 64, 56),
    "r2plus1d_18": BackboneSpec("r2plus1d_18", "clip", "R2Plus1D_18_Weights",
                                "3D ResNet-18 inflated from the ci-pretrained ResNet-18, trained on generated motion clips", 64, 56),
    "r3d_18": BackboneSpec("r3d_18", "clip", "R3D_18_Weights",
                           "3D ResNet-18 inflated from the ci-pretrained ResNet-18, trained on generated motion clips", 64, 56),
}



def spec(name: str) -> BackboneSpec:
    if name not in SPECS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(SPECS)}")
    return SPECS[name]


def resolve_weights(name: str, weights: str | None, *, mode: str) -> str | None:
    """The weights' canonical name, as it goes into a cache key.

    full: an enum member name of the family (`"DEFAULT"` becomes the member it points to, e.g.
    `"IMAGENET1K_V2"` for ResNet-50). ci: `"ci"` (the ci pretraining). None: random weights.
    """
    if weights is None:
        return None
    s = spec(name)
    if mode == "ci":
        if weights != "ci":
            raise ValueError(f"mode 'ci' uses the ci-pretrained weights (weights='ci'), got {weights!r}: "
                             f"ci has no {s.weights.__name__} (there is no internet to fetch them)")
        return "ci"
    if mode != "full":
        raise ValueError(f"mode must be 'ci' or 'full', got {mode!r}")
    try:
        return s.weights[weights].name
    except KeyError:
        raise ValueError(f"{s.weights.__name__} has no member {weights!r}; "
                         f"choose one of {[w.name for w in s.weights] + ['DEFAULT']}") from None


def input_size(name: str, *, mode: str) -> tuple[int, int]:
    """(resize, crop): frames are resized so their short side is `resize`, then cropped to `crop`.

    Full mode reads them from the default weights' `transforms()` (e.g. 256/224 for ImageNet
    ResNets, 128x171/112 for the Kinetics video networks, whose short side is 128).
    """
    s = spec(name)
    if mode == "ci":
        return s.ci_resize, s.ci_crop
    t = s.weights.DEFAULT.transforms()
    return min(t.resize_size), t.crop_size[0]


def weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision looks for `weights` offline: $TORCH_HOME/hub/checkpoints/<file name>."""
    file_name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def save_random_weights(name: str) -> Path:
    """Write a *randomly initialised* state_dict of `name`'s architecture where torchvision looks
    for its DEFAULT weights (`weights_path`), and return that path.

    For tests and timings only (the full-mode smoke test, `benchmarks/gpu_full.py`): the real
    loading path then runs offline, while no number computed from these weights means anything.
    A file already there is left alone (it may be the real one).
    """
    from actionbook.io import atomic_write

    s = spec(name)
    path = weights_path(s.weights.DEFAULT)
    if path.is_file():
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = s.build(weights=None).state_dict()
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def load_weights(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state_dict of `weights` from the offline cache, or a `MissingWeightsError` saying
    exactly which file to fetch from where and where to put it."""
    path = weights_path(weights)
    enum_name = f"{type(weights).__name__}.{weights.name}"
    if not path.is_file():
        raise MissingWeightsError(
            f"pretrained weights {enum_name} are not on this machine.\n"
            f"  expected file: {path.name}\n"
            f"  full path:     {path}\n"
            f"  download it on a machine with internet from {weights.url}\n"
            f"  and copy it to that path (set TORCH_HOME to use another folder than {path.parents[2]}).")
    try:
        # torchvision's own loading path: with the file present this only reads it
        # (check_hash checks the hash prefix in the name only when it downloads).
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)  # no code in a copied .pth
    except Exception as e:
        raise MissingWeightsError(f"could not read the weights file {path} for {enum_name} ({e}); "
                                  f"delete it and fetch it again from {weights.url}") from e


# --------------------------------------------------------------------------------------
# the networks


def _load_trunk(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load everything but the classifier head `fc` (features never use it), strictly."""
    missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")},
                                              strict=False)
    if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
        raise RuntimeError(f"ci weights do not fit the network: missing {missing}, unexpected {unexpected}")


class FrameBackbone(nn.Module):
    """A 2D ResNet cut after `layer`: frames (N, C, H, W) in [0, 1] -> (N, D) or (N, D, h, w)."""

    def __init__(self, net: ResNet, *, layer: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        stages = [net.layer1, net.layer2, net.layer3, net.layer4]
        if layer.startswith("conv5_"):
            unit = int(layer.split("_")[1])  # conv5_2_map -> 2 units of layer4
            if unit > len(net.layer4):
                raise ValueError(f"layer {layer!r} does not exist: this network's conv5_x has "
                                 f"{len(net.layer4)} units (ci's ResNet-18 has 2, ResNet-50/101 have 3)")
            body = stages[:3] + [net.layer4[:unit]]
        elif layer == "stem_map":
            body = []
        elif "." in layer:  # layer2.1_map -> stages 1, then units 0..1 of stage 2
            stage, unit = (int(v) for v in layer.removesuffix("_map").removeprefix("layer").split("."))
            if unit >= len(stages[stage - 1]):
                raise ValueError(f"layer {layer!r} does not exist: stage layer{stage} of this network has "
                                 f"{len(stages[stage - 1])} units")
            body = stages[:stage - 1] + [stages[stage - 1][:unit + 1]]
        else:
            body = stages[: int(layer[len("layer")])]
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.body = nn.Sequential(*body)
        self.pool = not layer.endswith("_map")
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std   # (N, C, H, W)
        x = self.body(self.stem(x))      # (N, D, h, w)
        return x.mean(dim=(2, 3)) if self.pool else x  # (N, D) or (N, D, h, w)


STAGE_LAYERS = ("layer1", "layer2", "layer3", "layer4")
"""The stage outputs of a 2D ResNet that `FrameTaps` reads in one pass."""


class FrameTaps(nn.Module):
    """One pass through a 2D ResNet, several stage outputs: frames (N, C, H, W) in [0, 1] -> a
    tuple with each of `layers`' outputs in order, (N, D) pooled or (N, D, h, w) for a `_map`
    layer: the numbers `FrameBackbone(layer=...)` gives for each, computed once (MRRN's levels)."""

    def __init__(self, frame: FrameBackbone, layers: Sequence[str]) -> None:
        super().__init__()
        self.frame = frame
        self.layers = tuple(layers)
        self.taps = [(STAGE_LAYERS.index(ly.removesuffix("_map")), not ly.endswith("_map")) for ly in self.layers]
        if max(k for k, _ in self.taps) >= len(frame.body):
            raise ValueError(f"FrameTaps: the network is cut after {len(frame.body)} stages, "
                             f"too early for {self.layers}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.frame
        x = f.stem((x - f.mean) / f.std)  # (N, C, h, w)
        outs = []
        for stage in f.body:              # each stage's output, (N, D_k, h_k, w_k)
            x = stage(x)
            outs.append(x)
        return tuple(outs[k].mean(dim=(2, 3)) if pool else outs[k] for k, pool in self.taps)


class ClipBackbone(nn.Module):
    """A 3D ResNet up to its global pool: clips (N, C, T, H, W) in [0, 1] -> (N, 512)."""

    def __init__(self, net: VideoResNet, *, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.layer = "pool"
        self.body = nn.Sequential(net.stem, net.layer1, net.layer2, net.layer3, net.layer4)
        self.register_buffer("mean", mean.view(1, -1, 1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std   # (N, C, T, H, W)
        x = self.body(x)                 # (N, 512, t, h, w)
        return x.mean(dim=(2, 3, 4))     # (N, 512)


def _check_layer(s: BackboneSpec, layer: str) -> None:
    if s.kind == "clip":
        ok = layer == "pool"
    else:
        ok = layer in {f"layer{i}{m}" for i in range(1, 5) for m in ("", "_map")} | {
            f"conv5_{u}_map" for u in (1, 2, 3)} | {f"layer{i}.{u}_map" for i in range(1, 5) for u in range(36)} | {
            "stem_map"}
    if not ok:
        choices = "'pool'" if s.kind == "clip" else ("layer1..layer4, layer1_map..layer4_map, conv5_1_map..conv5_3_map, "
                                                     "layerS.U_map (unit U of stage S, e.g. layer2.1_map), stem_map")
        raise ValueError(f"backbone {s.name!r} has no layer {layer!r}; choose {choices}")


def backbone(name: str, *, layer: str, modality: str = "rgb", weights: str | None,
             mode: str = "full", flow_length: int = 10) -> nn.Module:
    """A frozen feature extractor (eval mode, `requires_grad=False`).

    name: a key of `SPECS` (resnet18/34/50/101, r2plus1d_18, r3d_18).
    layer: see the module docstring. modality: "rgb" (3 channels) or "flow" (2 * flow_length
    stacked x/y channels for 2D networks, 2 channels for 3D ones).
    weights: full mode, a member of the family's enum ("DEFAULT", "IMAGENET1K_V1", ...),
    loaded offline (`MissingWeightsError` if absent); ci mode, "ci" (the ci pretraining, run
    once and cached); None, random initialisation (tests only: frozen random features mean
    nothing). mode: "full" builds the paper's family, "ci" its toy-size substitute.
    """
    s = spec(name)
    _check_layer(s, layer)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    weights = resolve_weights(name, weights, mode=mode)
    # random initialisation is seeded, so weights=None always gives the same network
    # (a cache entry made with it is reproducible); the caller's random stream is untouched
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _build(s, layer=layer, modality=modality, weights=weights, mode=mode, flow_length=flow_length)


def _build(s: BackboneSpec, *, layer: str, modality: str, weights: str | None, mode: str,
           flow_length: int) -> nn.Module:
    from actionbook.features.ci_nets import (CI_MEAN, CI_STD, ci_resnet18, cross_modality, inflated_r3d_18,
                                             norm_stats, width_of)

    channels = 3 if modality == "rgb" else (2 * flow_length if s.kind == "frame" else 2)
    if mode == "ci" and s.kind == "clip" and weights == "ci":
        # inflated from the ci ResNet-18, then video-pretrained on this modality (stem included)
        state = pretrain.ci_clip_state_dict(modality)
        net = pretrain.clip_network(modality, width=width_of(state))
        _load_trunk(net, state)
        mean, std = norm_stats(list(CI_MEAN), list(CI_STD), modality=modality, channels=channels)
        return _finish(ClipBackbone(net, mean=mean, std=std))
    if mode == "ci":
        state = pretrain.ci_state_dict() if weights == "ci" else None
        width = width_of(state) if state is not None else pretrain.PretrainConfig().width
        net = ci_resnet18(width=width) if s.kind == "frame" else inflated_r3d_18(width=width)
        mean, std = CI_MEAN, CI_STD
        if state is not None:
            _load_trunk(net, state)
    else:
        net = s.build(weights=None)
        stats = s.weights.DEFAULT.transforms()
        if weights is not None:
            w = s.weights[weights]
            stats = w.transforms()
            net.load_state_dict(load_weights(w))
        mean, std = tuple(stats.mean), tuple(stats.std)
    if modality == "flow":
        if s.kind == "frame":
            net.conv1 = cross_modality(net.conv1, channels)
        else:
            net.stem[0] = cross_modality(net.stem[0], channels)
    mean, std = norm_stats(list(mean), list(std), modality=modality, channels=channels)
    if s.kind == "frame":
        module: nn.Module = FrameBackbone(net, layer=layer, mean=mean, std=std)
    else:
        module = ClipBackbone(net, mean=mean, std=std)
    return _finish(module)


def frame_taps(name: str, *, layers: Sequence[str], modality: str = "rgb", weights: str | None,
               mode: str = "full", flow_length: int = 10) -> FrameTaps:
    """`backbone` for several stage outputs of one 2D network at once (`FrameTaps`): layers are
    "layer1".."layer4" or their "_map" forms; the other arguments as `backbone`'s."""
    bad = [ly for ly in layers if ly.removesuffix("_map") not in STAGE_LAYERS]
    if spec(name).kind != "frame" or bad or not layers:
        raise ValueError(f"frame_taps reads stage outputs {STAGE_LAYERS} (or their '_map' form) of a 2D network; "
                         f"got {name!r}, layers {tuple(layers)}")
    deepest = max(STAGE_LAYERS.index(ly.removesuffix("_map")) for ly in layers)
    frame = backbone(name, layer=STAGE_LAYERS[deepest], modality=modality, weights=weights, mode=mode,
                     flow_length=flow_length)
    return _finish(FrameTaps(frame, layers))


def _finish(module: nn.Module) -> nn.Module:
    """Frozen and in eval mode: a feature extractor."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def pretrained_stage(name: str, *, stage: str = "layer4", weights: str | None, mode: str = "full") -> nn.Module:
    """A *trainable* copy of one pretrained stage (e.g. `layer4`, or `layer4.2` for conv5_3),
    for the models that fine-tune the top of the backbone on cached maps: Iqbal et al. train
    block4 with temporal skips on frozen blocks 1-3 (`layer3_map` features); the Relational
    LSTM's branches continue with conv5_3 after `conv5_2_map`. `stage=""` gives the whole
    network (`models.recurrent_residual` takes its units from any position upward)."""
    s = spec(name)
    if s.kind != "frame":
        raise ValueError(f"pretrained_stage is for 2D ResNets, not {name!r}")
    weights = resolve_weights(name, weights, mode=mode)
    if mode == "ci":
        from actionbook.features.ci_nets import ci_resnet18, width_of

        state = pretrain.ci_state_dict() if weights == "ci" else None
        net = ci_resnet18(width=width_of(state) if state is not None else pretrain.PretrainConfig().width)
        if state is not None:
            _load_trunk(net, state)
    else:
        net = s.build(weights=None)
        if weights is not None:
            net.load_state_dict(load_weights(s.weights[weights]))
    module = net.get_submodule(stage)
    module.train()
    for p in module.parameters():
        p.requires_grad_(True)
    return module
