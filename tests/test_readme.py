"""README.md stays true: every ```python block runs (tiny budgets, in a temporary folder), the preset table
states each preset's values and rules exactly (``rules_beyond_paper``), every rule beyond the paper has its
line in the paper -> code table, and every results file under benchmarks/results/ is linked."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA_DIR, HAVE_DATA

from vase_rl.core.config import InferenceConfig, MaskConfig, get_preset, rules_beyond_paper

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PRESETS = ("paper", "paper-heuristics", "cpu")
HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None
DATA_ENVS = re.compile(r"vase_rl/(Moving)?(MNIST|Fashion|InverseFashion|Faces)")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def python_blocks(text: str) -> list[str]:
    """The code of every ```python block of ``text``, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row of ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-:| ]+\|", line):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def preset_table() -> dict[str, dict[str, str]]:
    """README "Presets": config path (the row's first backticked name) -> {preset: cell}."""
    rows = table_rows(section(README, "Presets"))
    header = [re.sub(r"[`*]", "", c) for c in rows[0]]
    assert tuple(header[1:]) == PRESETS, header
    out = {}
    for row in rows[1:]:
        path = re.match(r"`([\w.]+)`", row[0])
        assert path, f"preset table row without a config path: {row}"
        out[path.group(1)] = dict(zip(PRESETS, (re.sub(r"[`*]", "", c) for c in row[1:]), strict=True))
    return out


def value_of(config: Any, path: str) -> Any:
    for name in path.split("."):
        config = getattr(config, name)
    return config


def cell_matches(cell: str, value: Any) -> bool:
    """A table cell states ``value``: on/off for booleans, "-" for None, numbers with or without commas."""
    if isinstance(value, bool):
        return cell == ("on" if value else "off")
    if value is None:
        return cell == "-"
    if isinstance(value, tuple):
        return cell == ",".join(map(str, value))
    if isinstance(value, int | float):
        try:
            return float(cell.replace(",", "")) == float(value)
        except ValueError:
            return False
    return cell == str(value)


def rule_fields() -> set[str]:
    """``section.field`` of every InferenceConfig / MaskConfig field that ``rules_beyond_paper`` reports when
    it alone departs from the paper (the rules; the paper's own values such as kappa are not)."""
    out = set()
    for section, plain in (("inference", InferenceConfig.paper()), ("mask", MaskConfig.paper())):
        for f in dataclasses.fields(plain):
            value = getattr(plain, f.name)
            if isinstance(value, bool):
                other: Any = not value
            elif value is None:
                other = 0.5
            elif isinstance(value, str):
                other = {"error": "merge", "all": "none"}[value]
            else:
                other = value + 1
            try:
                config = get_preset("paper").with_overrides(**{section: {f.name: other}})
            except ValueError:  # e.g. lambda0 above lambda1: a paper value, not a rule
                continue
            out.update(r.split("=")[0] for r in rules_beyond_paper(config))
    for dream in ({"anchor": "on-switch"}, {"shared_reading": 1.0}):
        out.update(
            r.split("=")[0] for r in rules_beyond_paper(get_preset("paper").with_overrides(dream=dream))
        )
    out.update(
        r.split("=")[0]
        for r in rules_beyond_paper(get_preset("paper").with_overrides(loss={"rarity_power": 0.5}))
    )
    return out


@pytest.mark.parametrize("index", range(len(python_blocks(README))))
def test_every_python_block_of_the_readme_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = python_blocks(README)[index]
    if ("stable_baselines3" in code or "vase_rl.agents.sb3" in code) and not HAVE_SB3:
        pytest.skip("needs the sb3 extra (stable-baselines3)")
    if DATA_ENVS.search(code):
        if not HAVE_DATA:
            pytest.skip(f"real data not found in {DATA_DIR}: set VASE_DATA_DIR")
        monkeypatch.setenv("VASE_DATA_DIR", str(Path(DATA_DIR).resolve()))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


def test_the_readme_has_python_blocks() -> None:
    assert len(python_blocks(README)) >= 2


def test_the_preset_table_states_every_value_of_the_presets() -> None:
    table = preset_table()
    for path, cells in table.items():
        for name in PRESETS:
            value = value_of(get_preset(name), path)
            assert cell_matches(cells[name], value), (
                f"{path} of {name}: README {cells[name]!r}, config {value!r}"
            )
    assert {"model.image_size", "model.latent_dim", "steps_per_env", "dream.tau"} <= set(table)


def test_the_preset_table_lists_exactly_the_rules_beyond_the_paper() -> None:
    table = preset_table()
    rules = rule_fields()
    assert rules <= set(table), f"rules without a row in the preset table: {sorted(rules - set(table))}"
    for name in PRESETS:
        stated = {path for path in rules if table[path][name] != table[path]["paper"]}
        assert stated == {r.split("=")[0] for r in rules_beyond_paper(get_preset(name))}, name
    assert rules_beyond_paper(get_preset("paper")) == ()


def test_every_rule_beyond_the_paper_has_its_line_in_the_paper_to_code_table() -> None:
    text = section(README, "Paper -> code")
    classes = {
        "inference": "InferenceConfig",
        "mask": "MaskConfig",
        "dream": "DreamConfig",
        "loss": "LossConfig",
    }
    names = sorted(f"{classes[r.split('.')[0]]}.{r.split('.')[1]}" for r in rule_fields())
    assert [name for name in names if f"`{name}" not in text] == []


def test_every_results_file_is_linked() -> None:
    results = ROOT / "benchmarks" / "results"
    linked = set(re.findall(r"\]\((benchmarks/results/[^)#]+)", README))
    files = {str(p.relative_to(ROOT)) for p in results.rglob("*.md")}
    assert files - linked == set(), "link every results file from README.md's 'What it measures' table"
    assert all((ROOT / link).exists() for link in linked)


def test_every_local_link_resolves() -> None:
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / link).exists(), f"{doc.name}: {link}"


def test_no_word_about_how_the_work_was_organised() -> None:
    for word in ("issue", "session", "this stop", "stop's"):
        assert word not in README.lower(), word
