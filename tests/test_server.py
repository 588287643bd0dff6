"""The tool server over real HTTP: routes, content-hash images, compat format, auth, limits, timeouts, launcher."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading

import httpx
import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from thinkimg.config import LimitsConfig, ToolsConfig
from thinkimg.images import image_hash, png_base64
from thinkimg.server.app import create_app
from thinkimg.server.client import HTTPToolClient, ToolServerUnavailable
from thinkimg.server.launcher import ToolServer
from thinkimg.tools import REGISTRY, InProcessToolClient, Tool, ToolArgs, ToolContext, ToolError, ToolResult

DRAWING = ToolsConfig(tools=["DrawHorizontalLineByY", "DrawVerticalLineByX"])


@pytest.fixture(scope="module")
def drawing_server():
    with ToolServer(DRAWING) as server:
        yield server


def test_health_and_tool_listing(tool_server):
    with httpx.Client(base_url=tool_server.url) as http:
        assert http.get("/health").json()["status"] == "ok"
        specs = {t["name"]: t for t in http.get("/tools").json()["tools"]}
    assert set(specs) == set(REGISTRY.names())
    assert len(specs) == 8
    assert specs["Calculate"]["parameters"]["required"] == ["expression"]
    assert specs["DrawHorizontalLineByY"]["parameters"]["properties"]["y"]["type"] == "number"
    assert "y" in specs["DrawHorizontalLineByY"]["parameters"]["required"]


def test_server_binds_loopback_by_default(tool_server):
    assert tool_server.url.startswith("http://127.0.0.1:")


def test_every_tool_gives_the_same_result_in_process_and_over_http(http_client, bar_chart, panel_figure):
    local = InProcessToolClient()
    bar = bar_chart.boxes["bars"]["2021"]
    calls = [
        ("OCR", bar_chart.image, {}),
        ("Point", bar_chart.image, {"description": "2021"}),
        ("SegmentRegionAroundPoint", bar_chart.image, {"x": (bar[0] + bar[2]) // 2, "y": (bar[1] + bar[3]) // 2}),
        ("DrawHorizontalLineByY", bar_chart.image, {"y": 100}),
        ("DrawVerticalLineByX", bar_chart.image, {"x": 100}),
        ("Crop", bar_chart.image, {"box": [10, 20, 200, 220]}),
        ("ZoomInSubfigure", panel_figure.image, {"description": "Costs"}),
        ("Calculate", bar_chart.image, {"expression": "(12.5 + 3) / 4"}),
    ]
    for name, img, arguments in calls:
        here, there = local.call(name, img, arguments), http_client.call(name, img, arguments)
        assert here.text == there.text, name
        assert json.loads(json.dumps(here.data)) == there.data, name
        assert len(here.images) == len(there.images), name
        for a, b in zip(here.images, there.images):
            assert a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b)), name  # lossless


def test_image_sent_once_then_cited_by_hash(drawing_server, bar_chart):
    with httpx.Client(base_url=drawing_server.url) as http:
        key = image_hash(bar_chart.image)
        assert http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 3}, "image_hash": key}).status_code == 404
        first = http.post("/tools/DrawHorizontalLineByY",
                          json={"arguments": {"y": 3}, "image": png_base64(bar_chart.image)})
        assert first.status_code == 200 and first.json()["image_hash"] == key
        again = http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 4}, "image_hash": key})
        assert again.status_code == 200
        # a tool's output can be cited by its hash too (img_1 never travels back to the server)
        out_hash = again.json()["images"][0]["hash"]
        chained = http.post("/tools/DrawVerticalLineByX", json={"arguments": {"x": 5}, "image_hash": out_hash})
        assert chained.status_code == 200
    img = Image.open(__import__("io").BytesIO(base64.b64decode(chained.json()["images"][0]["png_base64"])))
    arr = np.asarray(img.convert("RGB"))
    assert (arr[4] == (230, 25, 75)).all() and (arr[:, 5] == (230, 25, 75)).all()


def test_http_client_resends_inline_when_server_forgot_the_image(bar_chart):
    with ToolServer(DRAWING) as a:
        url = a.url
        client = HTTPToolClient(url)
        client.call("DrawHorizontalLineByY", bar_chart.image, {"y": 1})
        assert image_hash(bar_chart.image) in client._known[url]
    with ToolServer(DRAWING, port=int(url.rsplit(":", 1)[1])):  # a fresh server on the same address
        result = client.call("DrawHorizontalLineByY", bar_chart.image, {"y": 2})
        assert result.data["y"] == 2
    client.close()


def test_client_fails_over_between_replicas_and_reports_all_down(bar_chart):
    with ToolServer(DRAWING) as live:
        dead_url = "http://127.0.0.1:9"  # discard port: nothing listens
        client = HTTPToolClient([dead_url, live.url], retries=2, backoff_s=0.0)
        for y in range(4):
            assert client.call("DrawHorizontalLineByY", bar_chart.image, {"y": y}).data["y"] == y
    with pytest.raises(ToolServerUnavailable, match="no tool server answered"):
        client.call("DrawHorizontalLineByY", bar_chart.image, {"y": 1})
    client.close()


def test_openthinkimg_wire_format(tool_server, bar_chart):
    b64 = png_base64(bar_chart.image)
    w, h = bar_chart.image.size
    with httpx.Client(base_url=tool_server.url, timeout=60) as http:
        r = http.post("/worker_generate", json={"model": "DrawHorizontalLineByY", "image": b64, "param": 'x="10" y="25"'})
        body = r.json()
        assert r.status_code == 200 and body["error_code"] == 0
        out = Image.open(__import__("io").BytesIO(base64.b64decode(body["edited_image"])))
        assert out.size == (w, h)  # full resolution, unlike the seed's 492x369
        row = round(0.25 * h)
        assert (np.asarray(out.convert("RGB"))[row] == (230, 25, 75)).all()

        r = http.post("/Point/worker_generate", json={"image": b64, "param": "2021"})
        assert r.status_code == 200 and '<point x="' in r.json()["text"]

        r = http.post("/worker_generate", json={"tool": "OCR", "image": b64, "param": ""})
        assert "Online sales" in r.json()["text"]

        r = http.post("/worker_generate", json={"tool": "crop", "image": b64, "param": "[10, 10, 110, 60]"})
        assert r.status_code == 200 and r.json()["edited_image"]

        r = http.post("/calculator/worker_generate", json={"image": b64, "param": "abs(257 - 44)"})
        assert r.status_code == 200 and r.json()["text"] == "abs(257 - 44) = 213" and r.json()["edited_image"] is None

        r = http.post("/worker_generate", json={"tool": "SAMAroundPoint", "image": b64, "param": "somewhere"})
        assert r.status_code == 422 and 'x="<percent>"' in r.json()["text"] and r.json()["error_code"] == 1


def test_bearer_token(bar_chart, monkeypatch):
    monkeypatch.setenv("THINKIMG_TEST_TOKEN", "s3cret")
    cfg = DRAWING.model_copy(deep=True)
    cfg.server.token_env = "THINKIMG_TEST_TOKEN"
    with ToolServer(cfg) as server:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/health").status_code == 200
            denied = http.get("/tools")
            assert denied.status_code == 401 and "bearer token" in denied.json()["error"]["message"]
            assert http.get("/tools", headers={"Authorization": "Bearer wrong"}).status_code == 401
        with HTTPToolClient(server.url, token="s3cret") as client:
            assert client.call("DrawVerticalLineByX", bar_chart.image, {"x": 1}).data["x"] == 1


class _GateArgs(ToolArgs):
    pass


class _Gate(Tool):
    """A test tool that blocks until released: stands in for a slow backend (e.g. a big model)."""

    name = "Gate"
    description = "blocks until the test opens the gate"
    Args = _GateArgs
    gate = threading.Event()

    def run(self, image, args):
        self.gate.wait(30)
        return ToolResult(text="passed")


def test_timeout_gives_504_and_busy_gives_503_and_the_server_recovers(bar_chart):
    cfg = ToolsConfig(limits=LimitsConfig(call_timeout_s=0.2, max_queue=1))
    cfg.server.workers = 1  # one worker: once a no-op job has run on it, the gate's slot is released
    app = create_app(cfg, tools={"Gate": _Gate(ToolContext(cfg))}, warm_up=False)
    _Gate.gate.clear()
    body = {"arguments": {}, "image": png_base64(bar_chart.image)}
    with TestClient(app) as http:
        slow = http.post("/tools/Gate", json=body)
        assert slow.status_code == 504 and "exceeded" in slow.json()["error"]["message"]
        busy = http.post("/tools/Gate", json=body)  # the timed-out call still holds the only slot
        assert busy.status_code == 503 and "busy" in busy.json()["error"]["message"]
        _Gate.gate.set()
        app.state.service.executor.submit(lambda: None).result(timeout=10)  # the pool drained
        ok = http.post("/tools/Gate", json=body)
        assert ok.status_code == 200 and ok.json()["text"] == "passed"
        assert http.get("/health").json()["in_flight"] == 0


def test_request_body_limit(bar_chart):
    cfg = ToolsConfig(tools=["DrawHorizontalLineByY"], limits=LimitsConfig(max_request_bytes=4096))
    with TestClient(create_app(cfg, warm_up=False)) as http:
        r = http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 1}, "image": png_base64(bar_chart.image)})
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_server_refuses_bad_config_file(tmp_path):
    bad = tmp_path / "tools.yaml"
    bad.write_text("server:\n  port: seventy\n")
    r = subprocess.run([sys.executable, "-m", "thinkimg.cli", "tools", "serve", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "server.port" in r.stderr and str(bad) in r.stderr


def test_launcher_stops_server_and_server_dies_with_its_parent(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from thinkimg.config import ToolsConfig
        from thinkimg.server.launcher import ToolServer
        server = ToolServer(ToolsConfig(tools=["DrawHorizontalLineByY"])).start()
        print(server.process.pid, flush=True)
        sys.stdin.read()  # block until killed
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    child = psutil.Process(child_pid)
    assert child.is_running()
    parent.kill()  # kill -9: no cleanup code runs in the parent
    parent.wait(10)
    child.wait(timeout=20)  # returns once the kernel's death signal has ended the server
    assert not psutil.pid_exists(child_pid) or child.status() == psutil.STATUS_ZOMBIE


def test_launcher_reports_a_server_that_cannot_start():
    from thinkimg.server.launcher import ToolServerError

    server = ToolServer(ToolsConfig(tools=["NoSuchTool"]))
    with pytest.raises(ToolServerError, match="NoSuchTool"):
        server.start()
    assert server.process.poll() is not None


def test_tools_over_http_meet_their_accuracy_on_charts_with_known_truth(http_client, bar_chart, panel_figure):
    """The acceptance checks of the tools, each made through the real HTTP server."""
    from thinkimg.tools.boxes import iou

    # OCR: tick and value labels are read where they are drawn
    lines = http_client.call("OCR", bar_chart.image).data["lines"]
    truth = [(t, b) for kind in ("xticks", "yticks") for t, b in bar_chart.boxes[kind].items()]
    truth += [("%g" % bar_chart.table[c], b) for c, b in bar_chart.boxes["values"].items()]
    found = sum(
        any(ln["text"].strip() == text and iou(ln["box"], box) > 0.3 for ln in lines) for text, box in truth
    )
    assert found / len(truth) >= 0.9, (found, len(truth))

    # Point: inside the described label's box, and inside the bar for a category
    tick = bar_chart.boxes["xticks"]["2020"]
    (x, y), = http_client.call("Point", bar_chart.image, {"description": "2020"}).data["points"]
    assert tick[0] <= x < tick[2] and tick[1] <= y < tick[3]
    bar = bar_chart.boxes["bars"]["2022"]
    (x, y), = http_client.call("Point", bar_chart.image, {"description": "the bar for 2022"}).data["points"]
    assert bar[0] <= x < bar[2] and bar[1] <= y < bar[3]

    # ZoomInSubfigure: the named panel of a 2x2 figure
    zoom = http_client.call("ZoomInSubfigure", panel_figure.image, {"description": "Staff"})
    assert iou(zoom.data["box"], panel_figure.boxes["panels"]["Staff"]) >= 0.9

    # SegmentRegionAroundPoint: the bar's box, on a same-size image
    seg = http_client.call("SegmentRegionAroundPoint", bar_chart.image,
                           {"x": (bar[0] + bar[2]) // 2, "y": (bar[1] + bar[3]) // 2})
    assert iou(seg.data["box"], bar) >= 0.9 and seg.images[0].size == bar_chart.image.size

    # Lines: on the exact row / column, nothing else changes, same resolution
    before = np.asarray(bar_chart.image)
    for name, arguments, axis in (("DrawHorizontalLineByY", {"y": 200}, 0), ("DrawVerticalLineByX", {"x": 333}, 1)):
        after = np.asarray(http_client.call(name, bar_chart.image, arguments).images[0])
        assert after.shape == before.shape
        changed = np.nonzero((after != before).any(axis=(1, 2) if axis == 0 else (0, 2)))[0]
        assert list(changed) == [next(iter(arguments.values()))]


def test_http_client_from_env_reads_replicas_and_token(monkeypatch):
    from thinkimg.server.client import HTTPToolClient

    monkeypatch.delenv("THINKIMG_TOOL_SERVER_URL", raising=False)
    assert HTTPToolClient.from_env() is None and HTTPToolClient.from_env(" , ") is None
    monkeypatch.setenv("THINKIMG_TOOL_SERVER_URL", "http://127.0.0.1:1/, http://127.0.0.1:2")
    monkeypatch.setenv("THINKIMG_TOOLS_TOKEN", "s3cret")
    client = HTTPToolClient.from_env()
    assert client.urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert client._http.headers["Authorization"] == "Bearer s3cret"
    assert HTTPToolClient.from_env("http://127.0.0.1:3").urls == ["http://127.0.0.1:3"]  # the argument wins
