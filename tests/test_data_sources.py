"""Source tables (manifest, CSVs, sampled views), synthetic themes, and the DVC remote a fresh clone pulls from."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from thinkimg.data.sources import MAX_LABEL, SourceError, load_manifest, load_sources, sample_table
from thinkimg.data.synthetic import THEMES, synthetic_table, themes

from conftest import DATA, REPO, dvc as _dvc


@pytest.fixture(scope="module")
def sources(data_dir):
    return load_sources(data_dir)


def _draws(source, seed: int):
    """A handful of tables of every shape the source supports, with the arguments that made them."""
    rng = random.Random(seed)
    for n_series in (1, 2, 3):
        for ordered in (None, True, False):
            n_categories = rng.randint(3, 6)
            if source.supports(n_categories=n_categories, n_series=n_series, ordered=ordered):
                yield (n_categories, n_series, ordered), sample_table(
                    source, rng, n_categories=n_categories, n_series=n_series, ordered=ordered)


# ------------------------------------------------------------------------------------------------ manifest


def test_manifest_describes_every_csv_with_origin_and_split(data_dir, sources):
    assert len(sources) >= 10
    assert sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file()) < 5e6
    assert {p.name for p in (data_dir / "sources").iterdir()} == {Path(s.spec.file).name for s in sources}
    for s in sources:
        origin = s.spec.origin
        assert origin.package in ("bokeh-sampledata", "vega-datasets") and origin.licence and origin.credit
        assert len(s.frame) > 0
    evals = [s for s in sources if s.split_group == "eval"]
    assert 0.2 <= len(evals) / len(sources) <= 0.35


def _write_manifest(data_dir: Path, tmp_path: Path, edit) -> Path:
    shutil.copytree(data_dir, tmp_path / "data")
    path = tmp_path / "data" / "sources.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(raw["sources"][0])
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda s: s.pop("split_group"), r"sources\.0\.split_group: Field required", id="missing"),
    pytest.param(lambda s: s["measures"][0].update(decimals=7),
                 r"sources\.0\.measures\.0\.decimals: .*less than or equal to 3", id="out-of-range"),
    pytest.param(lambda s: s["titles"].update(by_entity="{measure} in {planet}"), r"placeholder.*'planet'",
                 id="placeholder"),
    pytest.param(lambda s: s.update(colour="red"), r"sources\.0\.colour: Extra inputs are not permitted",
                 id="unknown-key"),
    pytest.param(lambda s: s["measures"].append(dict(s["measures"][0])), r"a column is named twice", id="twice"),
])
def test_a_broken_manifest_names_the_file_and_the_field(data_dir, tmp_path, edit, message):
    path = _write_manifest(data_dir, tmp_path, edit)
    with pytest.raises(SourceError, match=message) as err:
        load_manifest(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("line, field, value, message", [
    (5, -1, "abc", r"gapminder\.csv:5: column 'population': 'abc' is not a finite number"),
    (6, -2, "inf", r"gapminder\.csv:6: column 'fertility': 'inf' is not a finite number"),
    (7, 0, "", r"gapminder\.csv:7: column 'country' is empty"),
])
def test_a_broken_csv_names_the_file_and_the_line(data_dir, tmp_path, line, field, value, message):
    shutil.copytree(data_dir, tmp_path / "data")
    csv = tmp_path / "data" / "sources" / "gapminder.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    fields = lines[line - 1].split(",")
    fields[field] = value
    lines[line - 1] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        load_sources(tmp_path / "data")


def test_a_csv_with_a_missing_column_or_a_repeated_key_is_refused(data_dir, tmp_path):
    shutil.copytree(data_dir, tmp_path / "data")
    csv = tmp_path / "data" / "sources" / "gapminder.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame.drop(columns="fertility").to_csv(csv, index=False)
    with pytest.raises(SourceError, match=r"gapminder\.csv: missing column\(s\) \['fertility'\]"):
        load_sources(tmp_path / "data")
    pd.concat([frame, frame.iloc[[0]]]).to_csv(csv, index=False)
    with pytest.raises(SourceError, match=rf"gapminder\.csv:{len(frame) + 2}: repeats the key"):
        load_sources(tmp_path / "data")


# ------------------------------------------------------------------------------------------------ sampling


def test_sampled_values_are_the_csv_values_scaled_and_rounded(sources):
    """Every sampled number is looked up again in the raw CSV (read as text) and compared."""
    for source in sources:
        raw = pd.read_csv(DATA / source.spec.file, dtype=str, keep_default_na=False)
        for (n_categories, n_series, ordered), table in _draws(source, seed=7):
            meta = table.meta
            assert len(table.categories) == n_categories and len(table.series) == n_series
            assert ordered is None or table.ordered == ordered
            assert table.source == source.label and table.split_group == source.split_group and table.title
            assert all(len(label) <= MAX_LABEL for label in table.categories + table.series_names)
            rows = raw
            for column, value in meta["where"].items():
                rows = rows[rows[column] == value]
            for name, (kind, key) in meta["series"].items():
                picked = rows if kind == "measure" else rows[rows[kind] == key]
                column = key if kind == "measure" else meta["measure"]
                for category, shown in zip(table.categories, table.series[name]):
                    cell = picked.loc[picked[meta["category_column"]] == category, column]
                    assert len(cell) == 1, (source.name, table.title, name, category)
                    expected = round(float(cell.iloc[0]) / meta["scale"], meta["decimals"])
                    assert shown == pytest.approx(expected, abs=1e-9), (source.name, table.title, name, category)


def test_a_gapminder_snapshot_matches_the_csv_named_by_its_title(sources):
    gapminder = next(s for s in sources if s.name == "gapminder")
    raw = pd.read_csv(DATA / "sources" / "gapminder.csv")
    rng = random.Random(3)
    checked = 0
    while checked < 5:
        table = sample_table(gapminder, rng, n_categories=4, ordered=False)
        match = re.fullmatch(r"Life expectancy in (.+), (\d{4})", table.title)
        if not match:
            continue
        region, year = match.group(1), int(match.group(2))
        rows = raw[(raw["region"] == region) & (raw["year"] == year)].set_index("country")
        assert table.unit == "years" and table.category_name == "Country"
        expected = [round(float(rows.at[c, "life_expectancy"]), 1) for c in table.categories]
        assert table.series["Life expectancy"] == expected
        checked += 1


def test_large_counts_are_shown_in_a_display_unit(sources):
    gapminder = next(s for s in sources if s.name == "gapminder")
    rng = random.Random(0)
    units = set()
    for _ in range(40):
        table = sample_table(gapminder, rng, n_categories=5, ordered=False)
        if table.series_names == ["Population"]:
            units.add(table.unit)
            assert max(table.series["Population"]) < 10_000
    assert units and units <= {"thousand people", "million people", "billion people"}


def test_sampling_is_deterministic_and_splits_are_disjoint(sources):
    for source in sources:
        first = [t.to_dict() for _, t in _draws(source, seed=11)]
        assert first == [t.to_dict() for _, t in _draws(source, seed=11)]
    train, evals = load_sources(DATA, split="train"), load_sources(DATA, split="eval")
    assert {s.name for s in train}.isdisjoint(s.name for s in evals)
    assert {s.label for s in train}.isdisjoint(s.label for s in evals)
    assert len(train) + len(evals) == len(sources)
    assert {s.split_group for s in train} == {"train"} and {s.split_group for s in evals} == {"eval"}


def test_an_impossible_request_raises_a_clear_error(sources):
    medals = next(s for s in sources if s.name == "olympic_medals_2014")
    assert not medals.supports(n_categories=4, ordered=True)
    with pytest.raises(SourceError, match="olympic_medals_2014: cannot draw 4 categories x 1 series"):
        sample_table(medals, random.Random(0), n_categories=4, ordered=True)
    with pytest.raises(SourceError, match="cannot draw 500 categories"):
        sample_table(medals, random.Random(0), n_categories=500)
    with pytest.raises(SourceError, match="split must be"):
        load_sources(DATA, split="test")


def test_ordered_entities_come_as_a_run(sources):
    ages = next(s for s in sources if s.name == "un_population_by_age")
    bands = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
    rng = random.Random(5)
    for _ in range(10):
        table = sample_table(ages, rng, n_categories=4, n_series=2)
        start = bands.index(table.categories[0])
        assert table.ordered and table.categories == bands[start:start + 4]


# ------------------------------------------------------------------------------------------------ synthetic


def test_synthetic_tables_are_deterministic():
    for name, theme in THEMES.items():
        args = {"theme": name, "n_categories": 5, "n_series": 2, "split_group": theme.split_group}
        assert synthetic_table(random.Random(9), **args) == synthetic_table(random.Random(9), **args)
    assert synthetic_table(random.Random(1), n_categories=4) != synthetic_table(random.Random(2), n_categories=4)


def test_synthetic_values_units_and_shares_follow_the_theme():
    rng = random.Random(0)
    negatives = set()
    for name, theme in THEMES.items():
        for _ in range(15):
            n_series = rng.randint(1, 3)
            table = synthetic_table(rng, theme=name, n_categories=rng.randint(3, min(8, len(theme.categories))),
                                    n_series=n_series, split_group=theme.split_group)
            assert table.unit == theme.unit and table.ordered == theme.ordered
            assert table.source == f"synthetic:{name}" and table.split_group == theme.split_group
            assert set(table.categories) <= set(theme.categories) and "{" not in table.title
            assert all(len(label) <= MAX_LABEL for label in table.categories + table.series_names)
            if theme.ordered:
                start = theme.categories.index(table.categories[0])
                assert list(theme.categories[start:start + len(table.categories)]) == table.categories
            if theme.keep_order:
                assert table.categories == [c for c in theme.categories if c in table.categories]
            for values in table.series.values():
                assert all(theme.low <= v <= theme.high and round(v, theme.decimals) == v for v in values)
                if theme.shape == "shares":
                    assert sum(values) == pytest.approx(100) and min(values) > 0
                negatives.update(name for v in values if v < 0)
    assert {"division_profit", "monthly_temperature", "gdp_growth"} <= negatives


def test_eval_themes_are_disjoint_from_train_themes():
    train, evals = themes("train"), themes("eval")
    assert {t.name for t in train}.isdisjoint(t.name for t in evals) and len(train) + len(evals) == len(THEMES)
    assert 0.2 <= len(evals) / len(THEMES) <= 0.3
    rng = random.Random(4)
    drawn = {synthetic_table(rng, n_categories=4, split_group="eval").source for _ in range(100)}
    assert drawn <= {f"synthetic:{t.name}" for t in evals}
    with pytest.raises(ValueError, match="belongs to split group 'train'"):
        synthetic_table(rng, theme="gdp_growth", n_categories=4, split_group="eval")
    with pytest.raises(ValueError, match="no train theme"):
        synthetic_table(rng, n_categories=99)


# ------------------------------------------------------------------------------------------------ DVC


def test_a_fresh_clone_pulls_data_from_the_in_repo_remote(data_dir, tmp_path):
    """Copy what git would commit (tracked + untracked, not ignored), then `dvc pull` it like a new clone."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    clone = tmp_path / "clone"
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    assert not (clone / "data").exists() and (clone / ".dvc" / "remote").is_dir()
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    pull = _dvc("pull", "data.dvc", cwd=clone)  # the stage outputs of dvc.lock have no remote: a clone recomputes them
    assert pull.returncode == 0, pull.stdout + pull.stderr
    status = _dvc("status", "data.dvc", cwd=clone)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert (clone / path.relative_to(REPO)).read_bytes() == path.read_bytes(), path
