"""The tool server: a FastAPI app built from the tool registry.

Routes: ``GET /health``, ``GET /tools``, ``POST /tools/{name}`` (the native API; the image inline as base64 or
by the content hash of an image the server has already seen), and ``POST /worker_generate`` /
``POST /{tool}/worker_generate`` (OpenThinkIMG's wire format, see :mod:`thinkimg.server.compat`).

Tool calls run in a thread pool off the event loop with a per-call timeout; the number of calls in flight
is bounded (503 beyond it); request bodies, image bytes and pixels are limited. Every client mistake is a
4xx JSON error ``{"error": {"type", "message", "field"}}`` that says what was wrong.
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkimg import __version__
from thinkimg.config import ToolsConfig
from thinkimg.images import ImageCache, ImageError, decode_base64, decode_image, png_base64
from thinkimg.server import compat
from thinkimg.tools import REGISTRY, Tool, ToolContext, ToolError, ToolResult
from thinkimg.tools.base import short_repr


class APIError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field


class ToolCallRequest(BaseModel):
    """Body of ``POST /tools/{name}``: the arguments and exactly one of ``image`` / ``image_hash``."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments (see GET /tools).")
    image: str | None = Field(None, description="The image, base64 PNG/JPEG (a data: URL is accepted).")
    image_hash: str | None = Field(None, description="Content hash of an image sent earlier or returned by a tool.")


def error_body(type_: str, message: str, field: str | None = None) -> dict:
    return {"error": {"type": type_, "message": message, "field": field}}


class BodySizeLimit:
    """ASGI middleware: refuse request bodies larger than ``limit`` bytes with 413, also when chunked."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._reject(scope, send, 400, "invalid Content-Length header")
                if declared > self.limit:
                    return await self._reject(
                        scope, send, 413, f"request body of {declared} bytes exceeds the limit of {self.limit}"
                    )
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise APIError(413, "request_too_large", f"request body exceeds the limit of {self.limit} bytes")
            return message

        return await self.app(scope, limited_receive, send)

    async def _reject(self, scope, send, status: int, message: str):
        body = error_body("request_too_large" if status == 413 else "bad_request", message)
        if scope.get("path", "").endswith("/worker_generate"):  # the OpenThinkIMG routes answer in their shape
            body = compat.error_response(message, status)
        resp = JSONResponse(body, status)
        await send({"type": "http.response.start", "status": status, "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


def _keep_freed_image_buffers() -> None:
    """Let glibc's malloc reuse freed image-sized buffers in the worker threads instead of unmapping them.

    Worker threads get their own malloc arenas, which by default hand a freed buffer of a few MB back to the
    kernel at once (the main arena learns not to; thread arenas do not), so every tool call page-faults its
    image-sized buffers (copies, ``tobytes``, PNG rows) in anew: +60% server time on a 640x480 drawing call.
    This fixes the mmap threshold at 32 MiB and the trim threshold at 64 MiB, the values glibc's own dynamic
    tuning tops out at. A no-op off glibc, or when ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` are set.
    """
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


class ToolService:
    """The server's state: tools, image cache, worker pool and admission control."""

    def __init__(self, config: ToolsConfig, tools: dict[str, Tool] | None = None):
        _keep_freed_image_buffers()
        self.config = config
        self.tools = tools if tools is not None else REGISTRY.build(config, ToolContext(config))
        self.cache = ImageCache(config.limits.image_cache_pixels)
        self.executor = ThreadPoolExecutor(config.server.workers, thread_name_prefix="tool")
        self.in_flight = 0
        self.token = os.environ.get(config.server.token_env) or None

    def tool(self, name: str) -> Tool:
        tool = self.tools.get(name)
        if tool is None:
            raise APIError(404, "unknown_tool", f"unknown tool {name!r}; available: {', '.join(self.tools)}", "name")
        return tool

    def resolve_image(self, image_b64: str | None, key: str | None, field: str = "image") -> tuple[Image.Image, str]:
        """Decode an inline image (and remember it) or look one up by content hash; returns it and its hash."""
        limits = self.config.limits
        if image_b64 is not None and key is not None:
            raise APIError(422, "invalid_request", "give either 'image' or 'image_hash', not both", "image")
        if key is not None:
            img = self.cache.get(key)
            if img is None:
                raise APIError(
                    404, "image_unknown", f"no image with hash {short_repr(key)} on this server; send it inline", "image_hash"
                )
            return img, key
        if image_b64 is None:
            raise APIError(422, "invalid_request", "missing 'image' (base64) or 'image_hash'", "image")
        raw = decode_base64(image_b64, field=field, max_bytes=limits.max_image_bytes)
        img = decode_image(raw, field=field, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
        return img, self.cache.put(img)

    def encode_result(self, name: str, result: ToolResult) -> dict:
        """ToolResult -> JSON; output images are PNG base64 and cached, so later calls can cite their hash."""
        images = []
        for img in result.images:
            key = self.cache.put(img)
            images.append({"hash": key, "width": img.width, "height": img.height,
                           "png_base64": png_base64(img)})
        return {"tool": name, "text": result.text, "data": result.data, "images": images}

    async def run(self, fn, *args):
        """Run ``fn(*args)`` in the pool with the configured timeout and admission limit."""
        limits = self.config.limits
        if self.in_flight >= limits.max_queue:
            raise APIError(503, "busy", f"server busy: {self.in_flight} calls in flight (limit {limits.max_queue})")
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        abandoned = threading.Event()

        def guarded():
            if abandoned.is_set():  # timed out while queued: its client has its 504, skip the work
                return None
            return fn(*args)

        future = loop.run_in_executor(self.executor, guarded)

        def _done(_):
            self.in_flight -= 1

        future.add_done_callback(_done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), limits.call_timeout_s)
        except asyncio.TimeoutError:
            abandoned.set()  # a call still queued is dropped; one already running finishes and frees its slot
            raise APIError(504, "timeout", f"tool call exceeded {limits.call_timeout_s:g} s") from None

    def check_auth(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise APIError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)")


def create_app(config: ToolsConfig | None = None, tools: dict[str, Tool] | None = None, *, warm_up: bool = True) -> FastAPI:
    """Build the tool server app. ``warm_up`` builds the OCR engine before the server reports healthy."""
    config = config or ToolsConfig()
    service = ToolService(config, tools)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        needs_ocr = any(name in service.tools for name in ("OCR", "Point", "ZoomInSubfigure"))
        if warm_up and needs_ocr:
            ctx = next(iter(service.tools.values())).context
            await asyncio.get_running_loop().run_in_executor(service.executor, lambda: ctx.ocr_backend)
        yield
        service.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ThinkIMG tool server", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.add_middleware(BodySizeLimit, limit=config.limits.max_request_bytes)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(error_body(exc.type, exc.message, exc.field), exc.status)

    @app.exception_handler(ToolError)
    async def _tool_error(request: Request, exc: ToolError):
        return JSONResponse(error_body("invalid_arguments", exc.message, exc.argument), exc.status)

    @app.exception_handler(ImageError)
    async def _image_error(request: Request, exc: ImageError):
        return JSONResponse(error_body("invalid_image", exc.message, "image"), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request", "type": ""}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            ctx = first.get("ctx") or {}
            return JSONResponse(error_body("invalid_json", f"request body is not valid JSON: {ctx.get('error', first['msg'])}"), 400)
        if not loc and first.get("type") == "missing":
            return JSONResponse(error_body("invalid_request", "request body is missing: send a JSON object "
                                           '{"arguments": {...}, "image": <base64>}'), 422)
        if first.get("type") == "model_attributes_type" or (not loc and first.get("type") in ("dict_type", "model_type")):
            return JSONResponse(error_body("invalid_request", "request body must be a JSON object"), 422)
        where = f"field {field!r}: " if field else ""
        return JSONResponse(error_body("invalid_request", f"{where}{first['msg']}", field), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        cause = exc.__cause__  # FastAPI's body reading wraps what went wrong in a bare 400
        if isinstance(cause, APIError):  # e.g. a chunked body over the size limit
            return JSONResponse(error_body(cause.type, cause.message, cause.field), cause.status)
        if exc.status_code == 400 and isinstance(cause, (ValueError, RecursionError)):
            kind = "invalid_json"
            msg = f"request body is not valid JSON: {type(cause).__name__}: {short_repr(str(cause), 200)}"
        return JSONResponse(error_body(kind, msg), exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return JSONResponse(error_body("internal_error", f"internal error: {type(exc).__name__}: {exc}"), 500)

    @app.get("/health")
    async def health() -> dict:
        """Liveness and readiness: answers once the tools (and the OCR engine) are loaded."""
        return {"status": "ok", "version": __version__, "tools": len(service.tools), "in_flight": service.in_flight}

    @app.get("/tools")
    async def list_tools(request: Request) -> dict:
        """Name, description and JSON schema of the arguments of each tool."""
        service.check_auth(request)
        return {"tools": [tool.spec() for tool in service.tools.values()]}

    @app.post("/tools/{name}")
    async def call_tool(name: str, body: ToolCallRequest, request: Request) -> dict:
        """Run one tool on one image."""
        service.check_auth(request)
        tool = service.tool(name)
        args = tool.parse_args(body.arguments)  # cheap: validate before any image work

        def job() -> dict:
            started = time.perf_counter()
            img, key = service.resolve_image(body.image, body.image_hash)
            result = tool.execute(img, args)
            out = service.encode_result(name, result)
            out["image_hash"] = key
            out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
            return out

        return await service.run(job)

    async def _worker_generate(request: Request, tool_name: str | None) -> JSONResponse:
        try:  # every refusal in the seed's shape ({"text", "error_code": 1, ...}), also before the tool runs
            service.check_auth(request)
            payload = await _json_object(request)
            req = compat.parse_request(payload, tool_name, known=list(service.tools))
            tool = service.tool(req.tool)

            def job() -> dict:
                img, _ = service.resolve_image(req.image, None)
                arguments = compat.to_arguments(req.tool, req.param, img.width, img.height)
                result = tool(img, arguments)
                return compat.to_response(req.tool, result, img.width, img.height)

            return JSONResponse(await service.run(job))
        except (ToolError, ImageError, APIError) as exc:
            return JSONResponse(compat.error_response(exc.message, exc.status), exc.status)

    @app.post("/worker_generate")
    async def worker_generate(request: Request) -> JSONResponse:
        """OpenThinkIMG wire format: ``{"image": b64, "param": "...", "tool"|"model": name}``."""
        return await _worker_generate(request, None)

    @app.post("/{tool_name}/worker_generate")
    async def worker_generate_for(tool_name: str, request: Request) -> JSONResponse:
        """OpenThinkIMG wire format, one route per tool (as its per-tool workers)."""
        return await _worker_generate(request, tool_name)

    return app


async def _json_object(request: Request) -> dict:
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise APIError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise APIError(422, "invalid_request", f"request body must be a JSON object, got {type(payload).__name__}")
    return payload
