"""The book's structure: `_toc.yml` is complete and consistent, the environment files agree,
and the build turns executed notebooks into HTML with every chapter and no network."""

import re
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from actionbook import build, runner
from conftest import ROOT, write_notebook


def test_every_toc_entry_exists_and_every_notebook_has_mode():
    entries = runner.toc_files(ROOT)
    assert entries[0] == "book/intro"
    for entry in entries:
        src = runner.resolve_source(entry, ROOT)
        assert src.suffix == ".md", f"{entry}: sources are MyST markdown"
        if runner.is_notebook(src):
            import jupytext
            import nbformat

            nb = jupytext.read(src)
            tmp = Path(ROOT / "_build" / "test-params.ipynb")
            tmp.parent.mkdir(exist_ok=True)
            nbformat.write(nb, tmp)
            params = runner.read_parameters(tmp, src)
            tmp.unlink()
            assert params["mode"] == "ci", f"{src}: notebooks default to ci mode"


def test_chapters_without_code_say_planned_at_the_top():
    """A chapter folder with no notebook is not built yet: its pages say *planned* in their first lines."""
    entries = runner.toc_files(ROOT)
    folders = {Path(e).parent for e in entries if Path(e).parent != Path("book")}
    for folder in sorted(folders):
        pages = [runner.resolve_source(e, ROOT) for e in entries if Path(e).parent == folder]
        if any(runner.is_notebook(p) for p in pages):
            continue
        for page in pages:
            head = "\n".join(page.read_text().splitlines()[:12])
            assert "*Planned.*" in head, f"{page.relative_to(ROOT)} describes unbuilt work: say *Planned.* at its top"


def test_no_executed_notebook_is_committed():
    import subprocess

    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.ipynb"], capture_output=True,
                             text=True).stdout.split()
    assert tracked == [], f"executed notebooks are build output, not sources: {tracked}"


def _pins(lines):
    return {_canon(m.group(1)): m.group(2) for m in (re.match(r"\s*([A-Za-z0-9_.\-]+)==([^\s;]+)", ln)
                                                     for ln in lines) if m}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[list[str], list[str]]:
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    for r in runtime + dev:
        assert not r.specifier, f"pyproject.toml pins {r}: versions belong in constraints.txt only"
    return [_canon(r.name) for r in runtime], [_canon(r.name) for r in dev]


def test_one_source_of_pins():
    """pyproject.toml names the direct dependencies, constraints.txt pins them, and
    environment.yml and `make install` install through both instead of repeating versions."""
    runtime, dev = _declared()
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    unpinned = [n for n in runtime + dev if n not in constraints]
    assert not unpinned, f"direct dependencies without a pin in constraints.txt: {unpinned}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-c constraints.txt", "-e .[dev]"], pip_section
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert sorted(conda) == ["pip", "python=3.11"], f"conda installs only Python and pip, got {conda}"
    assert '-c constraints.txt -e ".[dev]"' in (ROOT / "Makefile").read_text()


def test_constraints_pin_everything_the_dependencies_pull_in():
    """Walk the installed metadata from actionbook[dev] down: every package reached is pinned."""
    from importlib import metadata

    from packaging.requirements import Requirement

    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    seen: set[str] = set()
    runtime, dev = _declared()
    todo = [(n, ()) for n in runtime + dev]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or ():
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
                continue
            todo.append((_canon(req.name), tuple(req.extras)))
    missing = sorted(seen - set(constraints))
    assert not missing, f"installed for actionbook[dev] but not pinned in constraints.txt: {missing}"
    wrong = {n: (metadata.version(n), constraints[n]) for n in seen if metadata.version(n) != constraints[n]}
    assert not wrong, f"installed versions differ from constraints.txt (run `make install`): {wrong}"


def _imports(path: Path) -> set[str]:
    """Top-level modules imported by a .py file, or by the code cells of a MyST notebook."""
    import ast

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        text = "\n".join(re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, flags=re.M | re.S))
        text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(("%", "!", ":")))
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_every_imported_package_is_declared():
    """What src/, book/ and benchmarks/ import is a runtime dependency; tests may also use dev ones."""
    import sys
    from importlib import metadata

    runtime, dev = _declared()
    provides = metadata.packages_distributions()  # module -> distributions
    local = {"actionbook"} | {p.stem for d in ("tests", "benchmarks") for p in (ROOT / d).glob("*.py")}
    problems = []
    for where, allowed in (("src", runtime), ("book", runtime), ("benchmarks", runtime), ("tests", runtime + dev)):
        for path in sorted((ROOT / where).rglob("*")):
            if path.suffix not in (".py", ".md"):
                continue
            for module in _imports(path) - local - set(sys.stdlib_module_names):
                dists = {_canon(d) for d in provides.get(module, ())}
                if not dists & set(allowed):
                    problems.append(f"{path.relative_to(ROOT)} imports {module} (from {sorted(dists) or '?'})")
    assert not problems, "imported but not declared in pyproject.toml:\n" + "\n".join(problems)


@pytest.mark.notebooks
@pytest.mark.slow
def test_book_builds_offline_with_every_chapter(tmp_path):
    """A small book with the real _config.yml: a page, a part, an executed notebook with math."""
    root = tmp_path / "book-root"
    (root / "book" / "part").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: Part one\n    chapters:\n"
        "      - file: book/part/index\n      - file: book/part/nb\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nSee $x_t^l = m_t^l + x_t^{l-1}$.\n")
    (root / "book" / "part" / "index.md").write_text("# The part\n\n$$\nh_t = o_t \\odot \\tanh(c_t)\n$$\n")
    write_notebook(root / "book" / "part" / "nb.md", "print('executed output 4321')")
    r = runner.run([root / "book" / "part" / "nb.md"], mode="ci", params={},
                   out_dir=root / "_build" / "executed", progress=False)
    assert list(r) == ["nb"]
    # the runner names notebooks relative to the repository; place it where the build looks
    (root / "_build" / "executed" / "ci" / "book" / "part").mkdir(parents=True)
    shutil.move(root / "_build" / "executed" / "ci" / "nb.ipynb",
                root / "_build" / "executed" / "ci" / "book" / "part" / "nb.ipynb")
    _fabricate_results(root / "results", chapter="part")
    index = build.build("ci", root=root)
    html = root / "_build" / "html"
    assert index == html / "index.html"
    for page in ("book/intro.html", "book/part/index.html", "book/part/nb.html"):
        assert (html / page).is_file(), page
    full_html = (html / "book/part/full_results.html").read_text()
    assert "Full-mode results" in full_html and "77.70" in full_html and "NVIDIA H200" in full_html
    assert "61.20" in full_html, "the ci table of the same name is shown beside the full one"
    assert "paper: UCF-101 split 1" in full_html and "86.9" in full_html, "the paper's numbers are beside ours"
    assert full_html.index("77.7 ± 0.4 (n=3)") < full_html.index("61.2 ± 0.4 (n=3)")
    nb_html = (html / "book/part/nb.html").read_text()
    assert "executed output 4321" in nb_html, "the book shows the executed outputs"
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()
    pages = [(html / p).read_text() for p in ("book/intro.html", "book/part/index.html")]
    for text in pages:
        assert "_static/mathjax/MathJax.js" in text
        scripts = re.findall(r'<script[^>]+src="([^"]+)"', text)
        remote = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
        assert remote == [], f"scripts fetched from the network: {remote}"


def _fabricate_results(results: Path, *, chapter: str) -> None:
    """A committed full-mode table (as a GPU run would write it) and this build's ci table."""
    from actionbook.io import write_json
    from actionbook.results import run_metadata

    cfg = {"dataset": "ucf101", "dataset_label": "UCF-101 split 1", "split": 1}
    for mode, acc, gpu in (("full", 77.7, "NVIDIA H200"), ("ci", 61.2, "none")):
        folder = results / mode / chapter
        folder.mkdir(parents=True)
        pd.DataFrame({"model": ["Res-LSTM"], "seed": [0], "accuracy": [acc]}).to_csv(folder / "table2.csv", index=False)
        meta = run_metadata(mode=mode, seed=[0, 1, 2], config=cfg if mode == "full" else {"dataset": "ci"})
        meta.update(commit="abcdef1234567890", dirty=False, hardware={"gpu": gpu, "cpu_count": 16}, written_at="2026-11-29T10:00:00+00:00")
        write_json(folder / "table2.json", meta)
        # the same table beside the paper's, as a chapter's `tableN_vs_paper` formats it
        pd.DataFrame({"model": ["Res-LSTM"], "paper: UCF-101 split 1": ["86.9"],
                      f"ours: {mode}": [f"{acc:.1f} ± 0.4 (n=3)"]}).to_csv(folder / "table2_vs_paper.csv", index=False)
        write_json(folder / "table2_vs_paper.json", meta)


def _mini_book(root: Path) -> None:
    (root / "book" / "part").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Part one\n"
                                   "    chapters:\n      - file: book/part/index\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "part" / "index.md").write_text("# The part\n")


def test_committed_full_results_are_staged_beside_the_ci_ones(tmp_path):
    root = tmp_path / "r"
    _mini_book(root)
    assert build.add_full_results(root, root / "results") == []  # none committed: nothing added
    _fabricate_results(root / "results", chapter="part")
    _fabricate_results(root / "results", chapter="elsewhere")  # a chapter the toc does not have
    dest = build.stage("ci", root=root)
    toc = yaml.safe_load((dest / "_toc.yml").read_text())
    part = toc["parts"][0]["chapters"][0]
    assert part["sections"] == [{"file": "book/part/full_results"}]
    assert toc["parts"][-1] == {"caption": "Full-mode results", "chapters": [{"file": "book/elsewhere/full_results"}]}
    page = (dest / "book" / "part" / "full_results.md").read_text()
    assert page.startswith("# Full-mode results: part")
    full, ci = page.index("**full mode**"), page.index("**ci mode**")
    assert full < page.index("77.70") < ci < page.index("61.20")
    for fact in ("commit abcdef1234 ·", "dataset: UCF-101 split 1", "split: 1", "hardware: NVIDIA H200",
                 "date: 2026-11-29T10:00:00+00:00", "seeds: 0, 1, 2"):
        assert fact in page[full:ci], fact
    assert "hardware: CPU only (16 cores)" in page[ci:]
    beside = page.index("## table2_vs_paper")
    assert ci < beside and page.index("paper: UCF-101 split 1", beside) < page.index("77.7 ± 0.4", beside)
    # the repository's own toc is untouched
    assert "full_results" not in (root / "_toc.yml").read_text()


def test_a_full_table_without_provenance_is_refused(tmp_path):
    root = tmp_path / "r"
    _mini_book(root)
    _fabricate_results(root / "results", chapter="part")
    (root / "results" / "full" / "part" / "table2.json").unlink()
    with pytest.raises(runner.RunnerError, match="table2.csv has no provenance file table2.json"):
        build.stage("ci", root=root)


def test_build_refuses_unexecuted_notebooks(tmp_path):
    root = tmp_path / "r"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/nb\n")
    write_notebook(root / "book" / "nb.md", "pass")
    with pytest.raises(runner.RunnerError, match="not executed in ci mode yet: book/nb.md"):
        build.stage("ci", root=root)
