"""The README and the documentation: the numbers they quote equal what the code computes, the README's Python
example and the tutorial notebook run top to bottom on the demo, and the README stays a short front page.

The documentation site itself is built by `make docs` (``mkdocs build --strict``, run by `make test`), which
executes the tutorial again and fails on any warning.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorial.py"
README_MAX_LINES = 150
SCREENSHOT_MAX_BYTES = 300_000


def _load_numbers_script():
    spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "scripts" / "readme_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


numbers = _load_numbers_script()


def test_render_replaces_each_block_body_and_names_stale_ones():
    text = (
        "intro\n<!-- generated:demo_cohort -->\nold text\n<!-- /generated -->\nmiddle\n"
        "<!-- generated:slices -->\n<!-- /generated -->\nend\n"
    )
    wanted = numbers.render(text, {"demo_cohort": "new text", "slices": "two\nlines"})
    assert wanted == (
        "intro\n<!-- generated:demo_cohort -->\nnew text\n<!-- /generated -->\nmiddle\n"
        "<!-- generated:slices -->\ntwo\nlines\n<!-- /generated -->\nend\n"
    )
    assert numbers.block_names(text) == ["demo_cohort", "slices"]
    assert numbers.stale_blocks(text, wanted) == ["demo_cohort", "slices"]
    assert numbers.stale_blocks(wanted, wanted) == []
    with pytest.raises(KeyError, match="unknown generated block 'nonsense'"):
        numbers.render("<!-- generated:nonsense -->\n<!-- /generated -->", {})


def test_every_generated_block_is_known_and_every_document_has_its_blocks():
    used = {name for path in numbers.DOCUMENTS for name in numbers.block_names(path.read_text(encoding="utf-8"))}
    assert used <= set(numbers.BLOCKS), f"unknown blocks: {used - set(numbers.BLOCKS)}"
    assert {"demo_cohort", "identifier_ladder", "slices"} <= set(numbers.block_names(README.read_text()))


@pytest.mark.slow
def test_quoted_numbers_equal_what_the_code_computes():
    """Every generated block of README.md and docs/*.md equals the script's output on the demo (runs come from
    the on-disk analysis cache when present). On failure: `python scripts/readme_numbers.py` and commit."""
    stale = [
        f"{path.relative_to(ROOT)}: {', '.join(numbers.stale_blocks(current, wanted))}"
        for path, (current, wanted) in numbers.regenerate().items()
        if current != wanted
    ]
    assert not stale, "out of date (run python scripts/readme_numbers.py): " + "; ".join(stale)


def _readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, f"the README should have one Python example, found {len(blocks)}"
    return blocks[0]


def test_readme_is_a_short_front_page_whose_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make run" in text and "make test" in text
    example = _readme_python_example()
    assert len([line for line in example.splitlines() if line.strip()]) <= 10
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    screenshot = ROOT / "docs" / "images" / "dashboard.png"
    assert screenshot.stat().st_size < SCREENSHOT_MAX_BYTES


@pytest.mark.slow
def test_readme_python_example_runs_on_the_demo():
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_readme_python_example(), "README.md (Python example)", "exec"), namespace)
    pair = namespace["pair"]
    assert (pair.model, pair.finding) == ("densenet121_jrzech", "Pneumothorax")
    assert 0 <= pair.overall["rate"] <= 1
    assert pair.label_audit is not None  # the expert labels read Pneumothorax
    assert "rate" in printed.getvalue()


@pytest.mark.slow
def test_tutorial_notebook_runs_top_to_bottom(monkeypatch):
    """The tutorial as a plain script (the docs build runs it again as a notebook)."""
    monkeypatch.chdir(TUTORIAL.parent)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        namespace = runpy.run_path(str(TUTORIAL), run_name="__main__")
    assert namespace["pair"].flip is not None
    assert "patients" in printed.getvalue()


QUOTED_DEFAULT = re.compile(r"`([a-z_]+)`\s+\(default ([0-9.,%]+)\)")
QUOTED_CONSTANT = re.compile(r"`([A-Z_]+)`\s+\(([0-9.,%]+)\)")


def _number(text: str) -> float:
    return float(text.rstrip("%").replace(",", "")) / (100 if text.endswith("%") else 1)


def test_settings_and_constants_quoted_in_the_docs_equal_the_code():
    """Every "`setting` (default N)" equals `AnalysisConfig`'s default and every "`CONSTANT` (N)" the constant
    in its home module, so the docs cannot drift from the code they describe."""
    import dataclasses

    from cxrfail.analysis import checks, config, slices

    defaults = {f.name: f.default for f in dataclasses.fields(config.AnalysisConfig)}
    quoted = 0
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for name, value in QUOTED_DEFAULT.findall(text):
            assert name in defaults, f"{path.name}: `{name}` is not an AnalysisConfig setting"
            assert _number(value) == defaults[name], f"{path.name}: `{name}` default is {defaults[name]}, not {value}"
            quoted += 1
        for name, value in QUOTED_CONSTANT.findall(text):
            home = next((m for m in (config, checks, slices) if hasattr(m, name)), None)
            assert home is not None, f"{path.name}: no constant {name} in cxrfail.analysis.config, .checks or .slices"
            assert _number(value) == getattr(home, name), f"{path.name}: {name} is {getattr(home, name)}, not {value}"
            quoted += 1
    assert quoted >= 8
