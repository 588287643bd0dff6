"""The training curves as one self-contained HTML page that renders offline: `dvc plots show` with a local template.

    python scripts/plots.py [--out dvc_plots] [--repo DIR] [TARGET ...]

`dvc plots show` on its own writes a page whose Vega, Vega-Lite and Vega-Embed scripts come from a CDN, so it stays
blank without a network. This script builds an HTML template with those three libraries inlined (the minified builds
vendored in configs/plots/, see the README there), hands it to `dvc plots show --html-template`, and checks that the
page it wrote loads no remote script. It plots every plot that dvc.yaml declares (the SFT loss and GRPO reward
curves, metrics/curves/*.json), or only the given targets, and prints the path of the page written
(OUT/index.html). It fails, saying why, when there is no curve to plot or dvc fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "configs" / "plots"
# Load order matters: vega-lite and vega-embed find `vega` (and `vegaLite`) as browser globals.
SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
CURVES = "metrics/curves/*.json"

# dvc_render fills `{plot_divs}` (required) and `{scripts}`/`{refresh_tag}` (optional) by plain text replacement.
# The template leaves `{scripts}` out on purpose: that is where dvc would put its CDN <script src=...> tags.
PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    <title>ThinkIMG training curves</title>
{inline_scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""
REMOTE_SCRIPT = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


class PlotsError(Exception):
    """Something the user must fix; the message says what."""


def offline_template(assets: Path = ASSETS) -> str:
    """The HTML template for `dvc plots show --html-template`, with the vendored Vega scripts inlined."""
    blocks = []
    for name in SCRIPTS:
        path = assets / name
        if not path.is_file():
            raise PlotsError(f"{path} is missing: the vendored Vega scripts are part of the repository "
                             f"(re-create them with `bash configs/plots/vendor.sh`)")
        code = path.read_text(encoding="utf-8")
        # The source map is not vendored; the comment would only make browser dev tools look for it.
        code = re.sub(r"^//# sourceMappingURL=.*$", "", code, flags=re.MULTILINE).rstrip()
        if len(code) < 10_000 or "</script" in code.lower():
            raise PlotsError(f"{path} does not look like a minified Vega build that can be inlined "
                             f"(re-create it with `bash configs/plots/vendor.sh`)")
        blocks.append(f"    <script>/* {name} (configs/plots, BSD-3-Clause) */\n{code}\n    </script>")
    page = PAGE.format(inline_scripts="\n".join(blocks))
    if "{scripts}" in page or "{plot_divs}" not in page:
        raise PlotsError("internal error: the offline template has dvc's {scripts} placeholder or lacks {plot_divs}")
    return page


def dvc_command() -> list[str]:
    """dvc from this interpreter's environment (the venv), else the one on PATH."""
    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    found = shutil.which("dvc")
    if found is None:
        raise PlotsError("dvc is not installed: run `make setup` (dvc is a dependency in pyproject.toml)")
    return [found]


def show(repo: Path = REPO, out: Path | None = None, targets: list[str] | None = None) -> tuple[Path, str]:
    """Run `dvc plots show` in `repo` with the offline template; return the page written and dvc's warnings."""
    repo = repo.resolve()
    out = (out if out is not None else repo / "dvc_plots").resolve()
    if not targets and not sorted(repo.glob(CURVES)):
        raise PlotsError(f"nothing to plot: no {CURVES} in {repo}. The sft and grpo stages write them "
                         f"(`dvc repro grpo`, or `thinkimg train sft|grpo --curve ...`)")
    page = out / "index.html"
    page.unlink(missing_ok=True)   # a stale page from an earlier run must not pass for this one
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    with tempfile.TemporaryDirectory(prefix="thinkimg-plots-") as tmp:
        template = Path(tmp) / "offline.html"
        template.write_text(offline_template(), encoding="utf-8")
        cmd = [*dvc_command(), "plots", "show", "--out", str(out), "--html-template", str(template), *(targets or [])]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    dvc_said = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise PlotsError(f"`dvc plots show` failed (exit {proc.returncode}) in {repo}:\n{dvc_said}")
    if not page.is_file():
        raise PlotsError(f"`dvc plots show` wrote no page: no plot data could be loaded in {repo}"
                         + (f"\n{dvc_said}" if dvc_said else ""))
    html = page.read_text(encoding="utf-8")
    remote = REMOTE_SCRIPT.search(html)
    if remote is not None or "vegaEmbed" not in html:
        raise PlotsError(f"{page} would not render offline: dvc did not use the inlined template"
                         + (f" (it loads {remote.group(0)!r}...)" if remote else ""))
    return page, proc.stderr.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="plot files or plot ids from dvc.yaml (default: every plot)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for index.html (default: dvc_plots in the repository; relative to the current "
                         "directory when given)")
    ap.add_argument("--repo", type=Path, default=REPO,
                    help="the DVC repository to plot (default: the one this script is in)")
    args = ap.parse_args(argv)
    try:
        page, warnings = show(args.repo, args.out, args.targets)
    except PlotsError as err:
        print(f"plots: error: {err}", file=sys.stderr)
        return 1
    if warnings:
        print(warnings, file=sys.stderr)
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
