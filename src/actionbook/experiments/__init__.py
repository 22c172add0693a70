"""One module per chapter: its configs (ci and full), its features, and one function per experiment.

What every chapter shares lives here: which dataset `-p dataset NAME` selects in full mode.
"""

from __future__ import annotations

from actionbook.paths import data_dir

DATASETS = ("ucf101", "hmdb51", "generated")  # what `-p dataset` may name in full mode


def full_dataset(dataset: str) -> dict[str, str]:
    """The config fields for a full-mode dataset name: where it is, its layout and labels.

    "ucf101" (`data_dir()/ucf101`, the default of every chapter), "hmdb51"
    (`data_dir()/hmdb51`), or "generated" (the generated benchmark's `full` preset).
    """
    if dataset == "ucf101":
        return dict(dataset=str(data_dir() / "ucf101"), layout="ucf101",
                    dataset_label="UCF-101 split 1", paper_dataset="UCF-101")
    if dataset == "hmdb51":
        return dict(dataset=str(data_dir() / "hmdb51"), layout="hmdb51",
                    dataset_label="HMDB-51 split 1", paper_dataset="HMDB-51")
    if dataset == "generated":
        return dict(dataset="full", layout="ucf101", dataset_label="generated benchmark, full preset",
                    paper_dataset="UCF-101")
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def preflight(*, mode: str, dataset: str, layout: str, backbone: str, split: int) -> dict[str, object]:
    """Check, before any work, that the dataset and the backbone weights are there.

    Raises the readers' `DatasetError` (naming the missing folder or split file and the layout
    `data/README.md` expects) or the backbones' `MissingWeightsError` (naming the weights file,
    where to put it and where to fetch it). In full mode both are checked before the generated
    `full` preset would be generated (on first use, a long job). Returns what was found.
    """
    from pathlib import Path

    from actionbook.data.datasets import read_records, resolve_dataset
    from actionbook.data.readers import DatasetError
    from actionbook.features import backbones as B

    if mode == "full":
        if dataset != "full" and not Path(dataset).is_dir():
            raise DatasetError(f"{dataset}: the {layout} dataset is not there. Put it in that folder "
                               f"in the layout of data/README.md (or set ACTIONBOOK_DATA), or run with "
                               f"`-p dataset generated` to use the generated benchmark's full preset")
        w = B.spec(backbone).weights.DEFAULT
        if not B.weights_path(w).is_file():
            B.load_weights(w)  # raises MissingWeightsError with the file name, URL and folder
    ds = resolve_dataset(dataset, layout=layout)
    train, classes = read_records(ds, split=split, subset="train")
    test, _ = read_records(ds, split=split, subset="test")
    return {"root": str(ds.root), "train videos": len(train), "test videos": len(test), "classes": len(classes)}
