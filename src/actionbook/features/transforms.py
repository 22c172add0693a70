"""Feature transforms fitted on the training split only: PCA (Res-LSTM) and z-normalisation (Iqbal).

Both learn statistics from features, so both can leak the test set into training if they
are fitted on it. The API makes that hard: `PCA.fit` and `ZNorm.fit` take the *training*
`FeatureSet` and refuse any other subset; the fitted object remembers which extractor it
was fitted on and refuses to `apply` to features of another one.

- PCA (Lakhal et al., Sec. 4.1): the residual LSTM adds its input to its output, so the input
  must have the hidden size d_m; the 4096-d C3D features are projected onto their first d_m
  principal components, d_m in {256, 512, 1024, 2048}. Signs of principal components are
  arbitrary; we fix each one so that its largest-magnitude coefficient is positive, which
  makes the projection deterministic.
- Z-normalisation (Iqbal et al., Table 1): each feature dimension is shifted and scaled to
  zero mean and unit variance over the training frames.

The rows are the items of every training video (crops are rows too, unless averaged first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from actionbook.features.cache import FeatureSet

_EXTRACTOR_FIELDS = ("dataset", "layout", "identity", "split", "backbone", "mode", "weights", "layer",
                     "sampling", "sampling_params", "crops", "resize", "crop_size", "modality",
                     "flow_method", "flow_length", "extractor_version")


def _train_rows(train: FeatureSet, what: str) -> torch.Tensor:
    if not isinstance(train, FeatureSet):
        raise TypeError(f"{what}.fit takes the training FeatureSet (so the test split cannot leak in), "
                        f"got {type(train).__name__}; for a bare tensor use {what}.fit_tensor")
    if train.subset != "train":
        raise ValueError(f"{what} must be fitted on the training split only, got the {train.subset!r} split "
                         f"(entry {train.key}); fit on the train FeatureSet and apply to both")
    if train.spec["layer"].endswith("_map"):
        raise ValueError(f"{what} works on feature vectors; entry {train.key} holds maps ({train.spec['layer']})")
    d = train.features[0].shape[-1]
    return torch.cat([x.reshape(-1, d) for x in train.features]).double()  # (rows, D)


def _extractor(fs: FeatureSet) -> dict:
    return {k: fs.spec.get(k) for k in _EXTRACTOR_FIELDS}


def _check_same_extractor(fitted: dict | None, fs: FeatureSet, what: str) -> None:
    if fitted is not None and _extractor(fs) != fitted:
        diff = [k for k in _EXTRACTOR_FIELDS if fitted.get(k) != fs.spec.get(k)]
        raise ValueError(f"this {what} was fitted on other features (they differ in {diff}); "
                         f"fit it on the training split of entry {fs.key}'s extractor")


@dataclass
class PCA:
    """x -> (x - mean) @ components: the first `dim` principal components of the training rows."""

    mean: torch.Tensor        # (D,)
    components: torch.Tensor  # (D, dim), orthonormal columns, by decreasing variance
    explained: torch.Tensor   # (dim,) fraction of the training variance each keeps
    extractor: dict | None = None

    @classmethod
    def fit(cls, train: FeatureSet, *, dim: int) -> PCA:
        """Fit on the training FeatureSet (any other subset is refused)."""
        pca = cls.fit_tensor(_train_rows(train, "PCA"), dim=dim)
        pca.extractor = _extractor(train)
        return pca

    @classmethod
    def fit_tensor(cls, x: torch.Tensor, *, dim: int) -> PCA:
        """Fit on rows x (N, D) -- which must come from training videos only."""
        x = x.double()
        n, d = x.shape
        if not 1 <= dim <= d:
            raise ValueError(f"PCA dim must be in 1..{d} (the feature size), got {dim}")
        if n < 2:
            raise ValueError(f"PCA needs at least 2 training rows, got {n}")
        mean = x.mean(0)                                  # (D,)
        xc = x - mean                                     # (N, D)
        cov = xc.T @ xc / (n - 1)                         # (D, D)
        var, vec = torch.linalg.eigh(cov)                 # ascending eigenvalues
        var, vec = var.flip(0)[:dim], vec.flip(1)[:, :dim]  # (dim,), (D, dim)
        big = vec.abs().argmax(0)                         # the largest-magnitude coefficient of each
        vec = vec * torch.sign(vec[big, torch.arange(dim)])  # ... is made positive
        total = cov.diagonal().sum()
        return cls(mean.float(), vec.float(), (var.clamp(min=0) / total).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components          # (..., D) -> (..., dim)

    def apply(self, fs: FeatureSet) -> FeatureSet:
        """Project every video of `fs` (train or test) onto the components."""
        _check_same_extractor(self.extractor, fs, "PCA")
        return fs.map(self, name=f"pca {self.components.shape[1]}")


@dataclass
class ZNorm:
    """x -> (x - mean) / std per dimension, with the training rows' mean and std."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor   # (D,)
    extractor: dict | None = None
    eps: float = 1e-6

    @classmethod
    def fit(cls, train: FeatureSet) -> ZNorm:
        z = cls.fit_tensor(_train_rows(train, "ZNorm"))
        z.extractor = _extractor(train)
        return z

    @classmethod
    def fit_tensor(cls, x: torch.Tensor) -> ZNorm:
        """Fit on rows x (N, D) -- which must come from training videos only."""
        x = x.double()
        return cls(x.mean(0).float(), x.std(0, unbiased=False).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + self.eps)    # (..., D)

    def apply(self, fs: FeatureSet) -> FeatureSet:
        _check_same_extractor(self.extractor, fs, "ZNorm")
        return fs.map(self, name="z-norm")
