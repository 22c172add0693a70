import platform
from dataclasses import dataclass

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from actionbook import results  # noqa: E402
from actionbook.io import temporaries  # noqa: E402


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONBOOK_RESULTS", str(tmp_path))


@dataclass
class Cfg:
    hidden: int = 8
    lr: float = 1e-3


def test_save_and_load_round_trip(tmp_path):
    df = pd.DataFrame({"hidden": [8, 16], "acc": [0.5, 0.75]})
    path = results.save(df, mode="ci", chapter="ch", experiment="exp", seed=[0, 1], config=Cfg(),
                        wall_time_s=1.5)
    assert path == tmp_path / "ci" / "ch" / "exp.csv"
    back, meta = results.load("ci", "ch", "exp")
    pd.testing.assert_frame_equal(back, df)
    assert meta["config"] == {"hidden": 8, "lr": 1e-3} and meta["seed"] == [0, 1]
    assert meta["mode"] == "ci" and meta["wall_time_s"] == 1.5
    assert {"torch", "numpy", "python"} <= set(meta["versions"])
    assert "commit" in meta and "written_at" in meta
    # atomic writes leave no temporary (`.exp.<random>.tmp.csv`) and nothing else behind
    assert sorted(p.name for p in (tmp_path / "ci" / "ch").iterdir()) == ["exp.csv", "exp.json"]
    assert not temporaries(tmp_path)


def test_save_refuses_bad_input():
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        results.save(pd.DataFrame({"a": [1]}), mode="fast", chapter="c", experiment="e", seed=0, config={})
    with pytest.raises(ValueError, match="non-empty"):
        results.save(pd.DataFrame(), mode="ci", chapter="c", experiment="e", seed=0, config={})


def test_load_missing_says_what_to_run():
    with pytest.raises(FileNotFoundError, match="python -m actionbook run --mode ci"):
        results.load("ci", "nope", "missing")


def test_paper_vs_ours_keeps_the_two_apart():
    ours = pd.DataFrame({"T": [5, 5, 5, 15, 15, 15], "seed": [0, 1, 2] * 2,
                         "acc": [80.0, 82.0, 84.0, 90.0, 90.0, 90.0]})
    paper = pd.DataFrame({"T": [5, 15, 25], "paper": [84.1, 85.6, 86.4]})
    t = results.paper_vs_ours(ours, paper, on=["T"], value="acc", paper_label="paper: UCF-101",
                              ours_label="ours: benchmark (ci)")
    assert list(t.columns) == ["T", "paper: UCF-101", "ours: benchmark (ci)"]
    assert list(t["T"]) == [5, 15, 25], "the paper's row order, keys keep their type"
    row5 = t[t["T"] == 5].iloc[0]
    assert row5["paper: UCF-101"] == "84.1"
    assert row5["ours: benchmark (ci)"] == "82.0 ± 2.0 (n=3)"
    assert t[t["T"] == 25].iloc[0]["ours: benchmark (ci)"] == "—"  # the paper-only row stays


def test_paper_vs_ours_names_missing_columns():
    with pytest.raises(KeyError, match="acc"):
        results.paper_vs_ours(pd.DataFrame({"T": [1]}), pd.DataFrame({"T": [1], "paper": [1.0]}),
                              on=["T"], value="acc", paper_label="p", ours_label="o")


def test_summarize_seeds():
    df = pd.DataFrame({"k": ["a", "a", "b"], "v": [1.0, 3.0, 5.0]})
    s = results.summarize_seeds(df, by=["k"], value="v").set_index("k")
    assert s.loc["a", "mean"] == 2.0 and s.loc["a", "n"] == 2 and s.loc["b", "std"] == 0.0


def test_save_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    p = results.save_figure(fig, mode="ci", chapter="ch", name="line")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_hardware_names_the_cpu_model(tmp_path):
    """The CPU model comes from /proc/cpuinfo's "model name" where there is one (the ci backbones
    are one draw per CPU model), else from `platform.processor()`."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n")
    assert results.cpu_model(info) == "AMD EPYC 7B13"
    assert results.cpu_model(tmp_path / "absent") == (platform.processor() or "unknown")
    hw = results.hardware()
    assert hw["processor"] and hw["cpu_count"] >= 1 and "gpu" in hw


def test_fixed_jitter_makes_stripplot_dots_repeat_and_leaves_numpy_as_it_was(tmp_path):
    import numpy as np
    import seaborn as sns

    from actionbook import plots

    data = pd.DataFrame({"x": ["a"] * 5 + ["b"] * 5, "y": range(10)})

    def dots(jitter_seed):
        fig, ax = plt.subplots()
        if jitter_seed is None:
            sns.stripplot(data, x="x", y="y", ax=ax)
        else:
            with plots.fixed_jitter(jitter_seed):
                sns.stripplot(data, x="x", y="y", ax=ax)
        xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections])
        plt.close(fig)
        return xs

    np.random.seed(1)
    free = [dots(None), dots(None)]
    assert not np.allclose(free[0], free[1])  # seaborn's jitter is random without the block
    np.random.seed(1)
    np.random.uniform(size=3)
    expected_next = np.random.uniform()
    np.random.seed(1)
    np.random.uniform(size=3)
    a, b = dots(0), dots(0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, dots(1))
    assert np.random.uniform() == expected_next  # the notebook's own draws are unchanged by the block
