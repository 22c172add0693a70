"""The book's structure: `_toc.yml` is complete and consistent, the environment files agree,
and the build turns executed notebooks into HTML with every chapter and no network."""

import re
import shutil
import tomllib
from pathlib import Path

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


def test_no_executed_notebook_is_committed():
    import subprocess

    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.ipynb"], capture_output=True,
                             text=True).stdout.split()
    assert tracked == [], f"executed notebooks are build output, not sources: {tracked}"


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for m in (re.match(r"\s*([A-Za-z0-9_.\-]+)==([^\s;]+)", ln)
                                                     for ln in lines) if m}


def test_environment_yml_mirrors_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(pyproject["dependencies"] + pyproject["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == wanted
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in wanted.items():
        assert constraints.get(name) == version, f"constraints.txt pins {name} differently"


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
    index = build.build("ci", root=root)
    html = root / "_build" / "html"
    assert index == html / "index.html"
    for page in ("book/intro.html", "book/part/index.html", "book/part/nb.html"):
        assert (html / page).is_file(), page
    nb_html = (html / "book/part/nb.html").read_text()
    assert "executed output 4321" in nb_html, "the book shows the executed outputs"
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()
    pages = [(html / p).read_text() for p in ("book/intro.html", "book/part/index.html")]
    for text in pages:
        assert "_static/mathjax/MathJax.js" in text
        scripts = re.findall(r'<script[^>]+src="([^"]+)"', text)
        remote = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
        assert remote == [], f"scripts fetched from the network: {remote}"


def test_build_refuses_unexecuted_notebooks(tmp_path):
    root = tmp_path / "r"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/nb\n")
    write_notebook(root / "book" / "nb.md", "pass")
    with pytest.raises(runner.RunnerError, match="not executed in ci mode yet: book/nb.md"):
        build.stage("ci", root=root)
