"""One module per chapter: its configs (ci and full), its features, one function per table or
figure, and its claims. What every chapter does is composed from `experiments.chapter`.

Adding a chapter (read `res_lstm.py` or `mrrn.py` beside this list):

1. a frozen `Config` dataclass and `CONFIGS = {"full": ..., "ci": ...}`; `config(mode, dataset=)`
   is `chapter.config_for(CONFIGS, ...)`, `preflight(cfg)` is `chapter.preflight(cfg)`;
2. `features(cfg)`: the chapter's entries of the shared feature cache;
3. `RunKey` (a frozen dataclass with a `seed` and a `condition` name) and `Runs`, which builds a
   key's model and `chapter.VideoFeatures` items and trains it through `chapter.RunCache`;
4. `run_tableN` / `run_figN` (train, return a tidy frame), `tableN_vs_paper` (beside the paper),
   drawing through `actionbook.plots`;
5. `claims(cfg)`: the paper's claims as `actionbook.audit.Claim` contrasts of two conditions,
   `conditions(runs)`: each condition's test scores, and `run_claims` through `chapter.claims_table`.
"""

from __future__ import annotations

from actionbook.experiments.chapter import DATASETS, full_dataset, preflight

__all__ = ["DATASETS", "full_dataset", "preflight"]
