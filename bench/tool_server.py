#!/usr/bin/env python
"""Benchmark: the tools in-process vs. over HTTP through the tool server, and the server's throughput.

    .venv/bin/python bench/tool_server.py            # ~2-3 min on 2 cores
    .venv/bin/python bench/tool_server.py --quick    # < 1 min

Per tool, on a rendered sample chart (the 2x2 panel figure for ZoomInSubfigure), median latency of:

* ``in-process``: ``InProcessToolClient.call``;
* ``+PNG round trip``: that, plus a PNG encode + decode of each result image (timed separately on the same
  outputs and added), i.e. the in-process cost plus lossless transport of the outputs, which every HTTP call pays;
* ``HTTP``: ``HTTPToolClient.call`` against a ``ToolServer`` started here, in the steady state (the input image
  was sent once; every timed call cites it by its hash);
* ``HTTP / in-process``: the ratio of the two medians measured in this run.

Tools that read text (OCR, Point, ZoomInSubfigure) share an OCR cache keyed by image content hash, so on the same
image they pay for recognition once. Their ``cached`` rows use the same image every call; their ``uncached`` rows
change one pixel per call (a new hash: OCR runs, and over HTTP the image travels inline, as a new image would).

Throughput: calls/s of 1, 8 and 32 client threads sharing one ``HTTPToolClient`` for a fixed window (calls
started in the window count, and the time to finish them). The server runs its default config
(``server.workers`` threads). On a small machine the clients compete with the server for the same cores: the
numbers are for the whole system, client included.

A transport breakdown of DrawHorizontalLineByY says where the HTTP time of an image-returning call goes.
Results: tables on stdout and ``bench/results/tool_server.json``.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from thinkimg.config import ToolsConfig  # noqa: E402
from thinkimg.data.render import render_bar_chart, render_panel_figure  # noqa: E402
from thinkimg.images import ImageCache, decode_base64, decode_image, encode_png, image_hash, png_base64  # noqa: E402
from thinkimg.server.client import HTTPToolClient  # noqa: E402
from thinkimg.server.launcher import ToolServer  # noqa: E402
from thinkimg.tools import REGISTRY, InProcessToolClient  # noqa: E402

SEVEN = ["OCR", "Point", "ZoomInSubfigure", "Crop", "SegmentRegionAroundPoint", "DrawHorizontalLineByY",
         "DrawVerticalLineByX"]
OCR_BACKED = {"OCR", "Point", "ZoomInSubfigure"}
DEFAULT_OUT = ROOT / "bench" / "results" / "tool_server.json"


@dataclass
class Case:
    tool: str
    image: Image.Image
    arguments: dict[str, Any]
    chart: str


_VARIANT_IDS = itertools.count(1)  # shared by all Variants: no two variants in a run are equal


@dataclass
class Variants:
    """Copies of an image, each with one pixel changed, so that every call sees a new content hash."""

    base: Image.Image

    def next(self) -> Image.Image:
        i = next(_VARIANT_IDS)  # itertools.count is atomic under the GIL
        img = self.base.copy()
        w = img.width
        img.putpixel((i % w, (i // w) % img.height), ((i * 37) % 256, (i * 101) % 256, (i * 53) % 256))
        return img


def cases() -> list[Case]:
    bar = render_bar_chart({"2019": 41.0, "2020": 27.5, "2021": 58.0, "2022": 63.0}, title="Online sales",
                           ylabel="Million USD")
    panel = render_panel_figure([("Revenue", {"Q1": 12, "Q2": 18}), ("Costs", {"Q1": 9, "Q2": 7}),
                                 ("Profit", {"Q1": 3, "Q2": 11}), ("Staff", {"Q1": 40, "Q2": 44})])
    x0, y0, x1, y1 = bar.boxes["bars"]["2021"]
    all_cases = [
        Case("OCR", bar.image, {}, "bar"),
        Case("Point", bar.image, {"description": "2021"}, "bar"),
        Case("ZoomInSubfigure", panel.image, {"description": "Costs"}, "panel"),
        Case("Crop", bar.image, {"box": [10, 20, 200, 220]}, "bar"),
        Case("SegmentRegionAroundPoint", bar.image, {"x": (x0 + x1) // 2, "y": (y0 + y1) // 2}, "bar"),
        Case("DrawHorizontalLineByY", bar.image, {"y": 100}, "bar"),
        Case("DrawVerticalLineByX", bar.image, {"x": 100}, "bar"),
    ]
    return [c for c in all_cases if c.tool in REGISTRY.names()]


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    """Wall times in ms of ``reps`` calls of ``fn``."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def png_round_trip(images: list[Image.Image]) -> None:
    for img in images:
        decode_image(encode_png(img), field="result image")


# ----------------------------------------------------------------------------------------------- latency


def latency_rows(all_cases: list[Case], local: InProcessToolClient, http: HTTPToolClient, reps: int,
                 uncached_reps: int, uncached_tools: set[str]) -> list[dict]:
    rows = []
    for case in all_cases:
        modes = ["cached"] if case.tool in OCR_BACKED else ["steady"]
        if case.tool in OCR_BACKED and case.tool in uncached_tools:
            modes.append("uncached")
        local.call(case.tool, case.image, case.arguments)  # warm-up (fills the OCR cache)
        http.call(case.tool, case.image, case.arguments)  # sends the image; later calls cite its hash
        outputs = local.call(case.tool, case.image, case.arguments).images
        round_trip = med(timed(lambda: png_round_trip(outputs), reps)) if outputs else 0.0
        for mode in modes:
            if mode == "uncached":  # the same new images on both sides (their OCR caches are separate)
                n = uncached_reps
                variants = Variants(case.image)
                fresh = [variants.next() for _ in range(n)]
                it_local, it_http = iter(fresh), iter(fresh)
                in_proc = timed(lambda: local.call(case.tool, next(it_local), case.arguments), n)
                over_http = timed(lambda: http.call(case.tool, next(it_http), case.arguments), n)
            else:
                n = reps
                in_proc = timed(lambda: local.call(case.tool, case.image, case.arguments), n)
                over_http = timed(lambda: http.call(case.tool, case.image, case.arguments), n)
            row = {
                "tool": case.tool,
                "mode": mode,
                "chart": case.chart,
                "image_size": list(case.image.size),
                "output_images": [list(im.size) for im in outputs],
                "reps": n,
                "in_process_ms": med(in_proc),
                "png_round_trip_of_outputs_ms": round_trip,
                "in_process_png_round_trip_ms": med(in_proc) + round_trip,
                "http_ms": med(over_http),
                "http_min_ms": min(over_http),
                "http_max_ms": max(over_http),
            }
            row["ratio_http_over_in_process"] = row["http_ms"] / row["in_process_ms"]
            row["http_overhead_ms"] = row["http_ms"] - row["in_process_ms"]
            rows.append(row)
            print(f"  latency {case.tool:<26} {mode:<9} in-process {row['in_process_ms']:8.2f} ms   "
                  f"+PNG {row['in_process_png_round_trip_ms']:8.2f} ms   HTTP {row['http_ms']:8.2f} ms", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- throughput


def throughput(http: HTTPToolClient, case: Case, clients: int, window_s: float, uncached: bool) -> dict:
    """Calls/s of ``clients`` threads calling for ``window_s`` seconds (calls started before the end count)."""
    variants = Variants(case.image) if uncached else None
    http.call(case.tool, case.image, case.arguments)  # the server knows the image (cached mode)
    deadline = time.perf_counter() + window_s
    done, errors = [0] * clients, [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            img = variants.next() if variants else case.image
            t0 = time.perf_counter()
            try:
                http.call(case.tool, img, case.arguments)
            except Exception:  # noqa: BLE001  (counted, reported)
                errors[i] += 1
            else:
                done[i] += 1
                latencies[i].append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat = [v for per in latencies for v in per]
    return {"calls": sum(done), "errors": sum(errors), "elapsed_s": elapsed, "calls_per_s": sum(done) / elapsed,
            "median_latency_ms": med(lat)}


def throughput_rows(http: HTTPToolClient, all_cases: list[Case], plan: list[tuple[str, str, list[int]]],
                    window_s: float, uncached_window_s: float) -> list[dict]:
    """``plan``: (tool, mode, client levels); mode steady/cached = same image by hash, uncached = new images."""
    rows = []
    by_tool = {c.tool: c for c in all_cases}
    for tool, mode, levels in plan:
        if tool not in by_tool:
            continue
        row: dict[str, Any] = {"tool": tool, "mode": mode, "by_clients": {}}
        for n in levels:
            window = uncached_window_s if mode == "uncached" else window_s
            r = throughput(http, by_tool[tool], n, window, uncached=mode == "uncached")
            row["by_clients"][str(n)] = r
            print(f"  throughput {tool:<26} {mode:<9} {n:>2} clients: {r['calls_per_s']:8.1f} calls/s "
                  f"({r['calls']} calls, {r['errors']} errors, median {r['median_latency_ms']:.1f} ms)", flush=True)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- breakdown


def breakdown(url: str, case: Case, local: InProcessToolClient, http: HTTPToolClient, reps: int) -> dict:
    """Where an image-returning call's HTTP time goes: each step of the path, timed alone, and the rest."""
    tool = local.tools[case.tool]
    img, args = case.image, case.arguments
    result = tool(img, args)
    out = result.images[0]
    cache = ImageCache()
    b64 = png_base64(out)
    payload = {"tool": case.tool, "text": result.text, "data": result.data,
               "images": [{"hash": image_hash(out), "width": out.width, "height": out.height, "png_base64": b64}],
               "image_hash": image_hash(img), "elapsed_ms": 1.0}
    body_text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    png = encode_png(out)
    steps = {
        "client: hash of the input image (to cite it)": lambda: image_hash(img),
        "client: JSON-encode the request": lambda: json.dumps({"arguments": args, "image_hash": payload["image_hash"]}),
        "server: run the tool": lambda: tool(img, args),
        "server: hash + cache the output image": lambda: cache.put(out),
        "server: PNG-encode the output": lambda: encode_png(out),
        "server: base64 of the PNG": lambda: base64.b64encode(png),
        "server: JSON-encode the response": lambda: json.dumps(payload, ensure_ascii=False, allow_nan=False,
                                                               separators=(",", ":")),
        "client: JSON-decode the response": lambda: json.loads(body_text),
        "client: base64-decode the PNG": lambda: decode_base64(b64),
        "client: PNG-decode the output": lambda: decode_image(png),
    }
    timings = {name: med(timed(fn, reps)) for name, fn in steps.items()}
    with httpx.Client(base_url=url, timeout=60) as raw:
        raw.get("/health")
        health = med(timed(lambda: raw.get("/health"), reps))
        key = image_hash(img)
        raw.post(f"/tools/{case.tool}", json={"arguments": args, "image": png_base64(img)})
        server_job: list[float] = []

        def call_by_hash() -> None:
            r = raw.post(f"/tools/{case.tool}", json={"arguments": args, "image_hash": key})
            server_job.append(r.json()["elapsed_ms"])

        raw_http = med(timed(call_by_hash, reps))
    http.call(case.tool, img, args)
    client_total = med(timed(lambda: http.call(case.tool, img, args), reps))
    accounted = sum(timings.values())
    return {
        "tool": case.tool,
        "image_size": list(img.size),
        "response_bytes": len(body_text),
        "png_bytes": len(png),
        "steps_ms": timings,
        "sum_of_steps_ms": accounted,
        "GET /health round trip (HTTP + ASGI floor) ms": health,
        "server job (elapsed_ms reported by the server) ms": med(server_job),
        "raw httpx POST by hash ms": raw_http,
        "HTTPToolClient.call ms": client_total,
        "rest (HTTP, uvicorn, FastAPI, thread hand-off) ms": client_total - accounted,
    }


# ----------------------------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_count": os.cpu_count(), "usable_cores": usable, "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict:
    out = {}
    for dist in ("thinkimg", "fastapi", "starlette", "uvicorn", "httpx", "pydantic", "pillow", "numpy", "rapidocr",
                 "onnxruntime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def print_tables(console: Console, report: dict) -> None:
    t = Table(title=f"Tool latency, median ms ({report['machine']['usable_cores']} cores, "
                    f"{report['config']['server_workers']} server workers)")
    for col in ("tool", "mode", "in-process", "+PNG round trip", "HTTP", "HTTP / in-process", "HTTP − in-process"):
        t.add_column(col, justify="left" if col in ("tool", "mode") else "right")
    for r in report["latency"]:
        t.add_row(r["tool"], r["mode"], f"{r['in_process_ms']:.2f}", f"{r['in_process_png_round_trip_ms']:.2f}",
                  f"{r['http_ms']:.2f}", f"{r['ratio_http_over_in_process']:.2f}x", f"{r['http_overhead_ms']:.2f}")
    console.print(t)
    console.print("mode: steady = same image every call, cited by hash; cached = same image, OCR result cached "
                  "by image hash; uncached = one pixel changed per call (new hash: OCR runs, image sent inline). "
                  "+PNG round trip = in-process + PNG encode/decode of the outputs.")

    levels = report["config"]["client_levels"]
    t = Table(title="Throughput over HTTP, calls/s (client threads sharing one HTTPToolClient)")
    t.add_column("tool")
    t.add_column("mode")
    for n in levels:
        t.add_column(f"{n} client{'s' if n > 1 else ''}", justify="right")
    for r in report["throughput"]:
        cells = []
        for n in levels:
            x = r["by_clients"].get(str(n))
            if x is None:
                cells.append("–")
                continue
            cells.append(f"{x['calls_per_s']:.1f}" + (f" ({x['errors']} err)" if x["errors"] else ""))
        t.add_row(r["tool"], r["mode"], *cells)
    console.print(t)
    console.print("throughput modes as above: OCR 'cached' hits the server's OCR cache; "
                  "'uncached' runs OCR on every call")

    b = report.get("breakdown")
    if b:
        t = Table(title=f"Where the HTTP time goes: {b['tool']} on a {b['image_size'][0]}x{b['image_size'][1]} chart "
                        f"(response {b['response_bytes'] / 1024:.0f} KiB)")
        t.add_column("step")
        t.add_column("median ms", justify="right")
        for name, ms in b["steps_ms"].items():
            t.add_row(name, f"{ms:.3f}")
        t.add_row("[b]sum of the steps[/b]", f"{b['sum_of_steps_ms']:.3f}")
        for key in ("GET /health round trip (HTTP + ASGI floor) ms",
                    "server job (elapsed_ms reported by the server) ms", "raw httpx POST by hash ms",
                    "HTTPToolClient.call ms", "rest (HTTP, uvicorn, FastAPI, thread hand-off) ms"):
            t.add_row(key.removesuffix(" ms"), f"{b[key]:.3f}")
        console.print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter windows (< 1 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    opts = parser.parse_args(argv)

    levels = [1, 8, 32]
    if opts.quick:
        reps, uncached_reps, window_s, uncached_window_s = 20, 2, 0.6, 1.0
        uncached_tools = {"OCR"}
        plan = [("DrawHorizontalLineByY", "steady", levels), ("Crop", "steady", levels), ("OCR", "cached", levels),
                ("OCR", "uncached", [1, 8])]
    else:
        reps, uncached_reps, window_s, uncached_window_s = 100, 3, 1.5, 3.0
        uncached_tools = OCR_BACKED
        plan = [(t, "cached" if t in OCR_BACKED else "steady", levels) for t in SEVEN] + [("OCR", "uncached", levels)]
    console = Console(width=max(Console().width, 150))
    started = time.perf_counter()
    load_start = os.getloadavg()

    all_cases = cases()
    names = [c.tool for c in all_cases]
    missing = [t for t in SEVEN if t not in names]
    if missing:
        console.print(f"[yellow]not registered, skipped: {', '.join(missing)}[/yellow]")
    config = ToolsConfig(tools=names)
    local = InProcessToolClient(config)
    console.print(f"starting a tool server with {len(names)} tools ...")
    t0 = time.perf_counter()
    with ToolServer(config) as server, HTTPToolClient(server.url, max_connections=64) as http:
        startup_s = time.perf_counter() - t0
        console.print(f"server up in {startup_s:.1f} s at {server.url}")
        lat = latency_rows(all_cases, local, http, reps, uncached_reps, uncached_tools)
        tp = throughput_rows(http, all_cases, plan, window_s, uncached_window_s)
        draw = next((c for c in all_cases if c.tool == "DrawHorizontalLineByY"), None)
        bd = breakdown(server.url, draw, local, http, reps) if draw else None
    local.close()

    report = {
        "benchmark": "tool_server",
        "quick": opts.quick,
        "created_unix": time.time(),
        "machine": {**machine_info(), "loadavg_1min_start": load_start[0], "loadavg_1min_end": os.getloadavg()[0]},
        "versions": versions(),
        "config": {"tools": names, "server_workers": config.server.workers, "max_queue": config.limits.max_queue,
                   "ocr_backend": config.ocr.backend, "reps": reps, "uncached_reps": uncached_reps,
                   "throughput_window_s": window_s, "throughput_window_uncached_s": uncached_window_s,
                   "client_levels": levels, "server_startup_s": startup_s},
        "latency": lat,
        "throughput": tp,
        "breakdown": bd,
        "total_s": time.perf_counter() - started,
    }
    print_tables(console, report)
    if load_start[0] > 0.5 * (report["machine"]["usable_cores"] or 1):  # (at the end the load includes this run)
        console.print(f"[yellow]note: the machine was busy before this run (1-min load {load_start[0]:.1f}): "
                      f"timings are noisy[/yellow]")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {opts.out} in {report['total_s']:.0f} s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
