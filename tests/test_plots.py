"""scripts/plots.py: the training curves as an offline `dvc plots show` page (Vega inlined from configs/plots/), run
on a minimal git + DVC repository holding a copy of the script and its vendored scripts, as in any clone."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "plots.py"
ASSETS = REPO / "configs" / "plots"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}

SFT = [{"step": s, "loss": round(6.5 / s, 4), "learning_rate": 0.001} for s in range(1, 6)]
GRPO = [{"step": s, "reward": round(0.1 * s, 4), "correctness_reward": round(0.05 * s, 4)} for s in range(1, 4)]
DVC_YAML = """plots:
  - metrics/curves/sft.json:
      x: step
      y: loss
  - metrics/curves/grpo.json:
      x: step
      y: reward
"""


def run_plots(*args: str, cwd: Path, script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          check=False, timeout=120)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A git + DVC repository with dvc.yaml's plots, scripts/plots.py and configs/plots/, but no curves yet."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    init = subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, env=ENV, capture_output=True,
                          text=True, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "scripts").mkdir()
    shutil.copy2(SCRIPT, root / "scripts" / "plots.py")
    shutil.copytree(ASSETS, root / "configs" / "plots")
    return root


def test_vendored_scripts_match_their_checksums():
    for line in (ASSETS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, f"configs/plots/{name} changed"


def test_nothing_to_plot_fails_clearly(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    proc = run_plots("--repo", str(tmp_path), cwd=tmp_path, script=SCRIPT)
    assert proc.returncode == 1
    assert "nothing to plot" in proc.stderr and "metrics/curves/*.json" in proc.stderr
    assert not (tmp_path / "dvc_plots").exists()


def test_dvc_failure_is_reported(tmp_path):
    (tmp_path / "metrics" / "curves").mkdir(parents=True)
    (tmp_path / "metrics" / "curves" / "sft.json").write_text(json.dumps(SFT))
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core\nbroken")
    proc = run_plots("--repo", str(tmp_path), cwd=tmp_path, script=SCRIPT)
    assert proc.returncode == 1
    assert "`dvc plots show` failed" in proc.stderr and "config file error" in proc.stderr


def test_offline_page_has_vega_inline_and_the_curves(clone):
    curves = clone / "metrics" / "curves"
    curves.mkdir(parents=True)
    (curves / "sft.json").write_text(json.dumps(SFT))
    (curves / "grpo.json").write_text(json.dumps(GRPO))
    elsewhere = clone / "metrics"   # the script finds its repository from its own path, not the current directory

    proc = run_plots(cwd=elsewhere, script=clone / "scripts" / "plots.py")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = Path(proc.stdout.strip().splitlines()[-1])
    assert page == (clone / "dvc_plots" / "index.html").resolve() and page.is_file()
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE), "the page loads a script from elsewhere"
    assert "cdn.jsdelivr.net" not in html
    for name, version in [("vega", "5.33.1"), ("vega-lite", "5.23.0"), ("vega-embed", "6.29.0")]:
        assert f"/* {name}.min.js " in html
        assert f'"{version}"' in html, f"{name} {version} is not inlined"
    # dvc's Vega-Lite specs with the data points inline, one per curve, drawn by vegaEmbed
    specs = [json.loads(s) for s in re.findall(r"var spec = (\{.*?\});\n", html)]
    assert len(specs) == 2 and html.count("vegaEmbed('#") == 2
    values = {spec["title"]["text"]: spec["data"]["values"] for spec in specs}
    assert [(p["step"], p["loss"]) for p in values["metrics/curves/sft.json"]] == [(p["step"], p["loss"]) for p in SFT]
    assert [(p["step"], p["reward"]) for p in values["metrics/curves/grpo.json"]] == [
        (p["step"], p["reward"]) for p in GRPO]
