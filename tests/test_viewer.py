"""The trajectory viewer: one self-contained, escaped HTML file, rendered for real in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from thinkimg.agent.policies import build_policy
from thinkimg.eval.evaluator import evaluate, paths_for
from thinkimg.eval.tasks import load_task
from thinkimg.eval.viewer import render_viewer
from thinkimg.tools import InProcessToolClient


@pytest.fixture(scope="module")
def viewer_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer")
    out = root / "r.jsonl"
    summary = evaluate(build_policy("scripted"), load_task("synthetic_value", n=2, seed=3), output=out,
                       client=InProcessToolClient(), max_rounds=3, batch_size=2, ablation=False)
    return paths_for(out)["viewer"], summary


def test_viewer_is_self_contained(viewer_run):
    html_path, summary = viewer_run
    html = html_path.read_text()
    assert html.count('src="data:image/png;base64,') == 2  # one chart per sample (no tool returned an image)
    assert not re.search(r'(src|href)="(https?:|//)', html) and "<script" not in html
    assert 'id="summary"' in html and "call <b>OCR</b>" in html and "What is the value of" in html
    assert html.count('class="sample right"') == round(summary["accuracy"] * 2)


def test_viewer_escapes_all_text(tmp_path):
    record = {"id": "<i>x</i>", "question": "<script>alert(1)</script>", "answer": "a&b", "prediction": "<b>",
              "correct": False, "images_dir": "none",
              "conversation": {"images": {"img_0": "missing.png"}, "messages": [
                  {"role": "user", "content": [{"type": "image", "ref": "img_0"}, {"type": "text", "text": "<q>"}]},
                  {"role": "assistant", "content": [],
                   "tool_calls": [{"type": "function", "function": {"name": "<Bad>", "arguments": {"k": "</pre>"}}}]},
                  {"role": "tool", "name": "x", "content": [{"type": "text", "text": "</div><img src=x>"}]}]}}
    html = render_viewer([record], tmp_path)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x>" not in html and "&lt;Bad&gt;" in html and "a&amp;b" in html and "missing]" in html


def test_viewer_renders_in_headless_chromium(viewer_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y --no-install-recommends chromium); "
                    ".ci/run installs it")
    html_path, _ = viewer_run
    probe = tmp_path / "probe.html"
    check = ("<script>window.addEventListener('load',function(){var im=[].slice.call(document.images);"
             "var d=document.createElement('div');d.id='probe';d.textContent='imgs='+im.length+' loaded='+"
             "im.filter(function(i){return i.complete&&i.naturalWidth>0;}).length+' steps='+"
             "document.querySelectorAll('.step').length+' samples='+document.querySelectorAll('section.sample')"
             ".length;document.body.appendChild(d);});</script>")
    probe.write_text(html_path.read_text().replace("</body>", check + "</body>"))
    profile = tmp_path / "profile"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=60)
    match = re.search(r'id="probe">imgs=(\d+) loaded=(\d+) steps=(\d+) samples=(\d+)<', result.stdout)
    assert match, (result.stdout[-1000:], result.stderr[-2000:])
    imgs, loaded, steps, samples = map(int, match.groups())
    assert samples == 2 and imgs == 2 and loaded == 2
    assert steps == 2 * 4  # user, assistant (OCR call), tool, assistant (answer)
