"""HTTPToolClient: the ToolClient that calls tool servers over HTTP (pooled, with timeouts, retries, replicas)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import httpx
from PIL import Image

from thinkimg.images import decode_base64, decode_image, image_hash, png_base64
from thinkimg.tools import ToolClient, ToolError, ToolResult


class ToolServerUnavailable(ConnectionError):
    """No tool server answered (every URL refused or timed out after the retries)."""


class HTTPToolClient(ToolClient):
    """Calls ``POST /tools/{name}`` on one or more servers (replicas, used round-robin, failing over on
    connection errors). An image a server has seen (sent or returned) is sent again only as its hash."""

    def __init__(
        self,
        urls: str | list[str],
        *,
        token: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        max_connections: int = 64,
    ):
        self.urls = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        if not self.urls:
            raise ValueError("HTTPToolClient needs at least one server URL")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self.retries = retries
        self.backoff_s = backoff_s
        self._next = itertools.cycle(range(len(self.urls)))
        self._known: dict[str, set[str]] = {u: set() for u in self.urls}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, urls: str | None = None, **kwargs: Any) -> HTTPToolClient | None:
        """A client for ``urls`` or else ``THINKIMG_TOOL_SERVER_URL`` (comma-separated replicas), with
        ``THINKIMG_TOOLS_TOKEN`` as bearer token; None when neither names a server."""
        import os

        text = urls or os.environ.get("THINKIMG_TOOL_SERVER_URL") or ""
        replicas = [u.strip() for u in text.split(",") if u.strip()]
        if not replicas:
            return None
        return cls(replicas, token=os.environ.get("THINKIMG_TOOLS_TOKEN") or None, **kwargs)

    def _pick(self) -> str:
        with self._lock:
            return self.urls[next(self._next)]

    def _post(self, path: str, body: dict, url: str | None = None) -> tuple[str, httpx.Response]:
        """POST with retries on connection errors and 503, moving to the next replica each time."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            target = url if (url is not None and attempt == 0) else self._pick()
            try:
                resp = self._http.post(target + path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                last = exc
            else:
                if resp.status_code != 503:
                    return target, resp
                last = ToolServerUnavailable(f"{target}: busy (503)")
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2**attempt))
        raise ToolServerUnavailable(f"no tool server answered at {', '.join(self.urls)}: {last}")

    def call(self, name: str, image: Image.Image, arguments: dict[str, Any] | None = None) -> ToolResult:
        key = image_hash(image)
        url = self._pick()
        body: dict[str, Any] = {"arguments": dict(arguments or {})}
        if key in self._known[url]:
            body["image_hash"] = key
        else:
            body["image"] = png_base64(image)
        url, resp = self._post(f"/tools/{name}", body, url)
        if resp.status_code == 404 and _error_type(resp) == "image_unknown":
            body.pop("image_hash", None)
            body["image"] = png_base64(image)
            url, resp = self._post(f"/tools/{name}", body, url)
        if resp.status_code >= 400:
            err = _error(resp)
            raise ToolError(err.get("message") or resp.text, argument=err.get("field"), status=resp.status_code)
        self._known[url].add(key)
        payload = resp.json()
        images = []
        for item in payload.get("images", []):
            images.append(decode_image(decode_base64(item["png_base64"], field="result image"), field="result image"))
            self._known[url].add(item["hash"])
        return ToolResult(text=payload["text"], images=images, data=payload.get("data") or {})

    def specs(self) -> list[dict[str, Any]]:
        resp = self._http.get(self._pick() + "/tools")
        if resp.status_code >= 400:
            raise ToolError(_error(resp).get("message") or resp.text, status=resp.status_code)
        return resp.json()["tools"]

    def health(self) -> list[dict[str, Any]]:
        """``/health`` of every replica (raises if one is down)."""
        return [self._http.get(u + "/health").raise_for_status().json() for u in self.urls]

    def close(self) -> None:
        self._http.close()


def _error(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body.get("error") or {} if isinstance(body, dict) else {}


def _error_type(resp: httpx.Response) -> str | None:
    return _error(resp).get("type")


def connect(urls: str | None = None, tools_config: Any = None) -> ToolClient:
    """The one way a stage gets its tools: the tool server(s) of ``urls`` or ``THINKIMG_TOOL_SERVER_URL``
    (:meth:`HTTPToolClient.from_env`), else the tools in-process with ``tools_config`` (a YAML path or a
    ``ToolsConfig``; None: the defaults)."""
    client = HTTPToolClient.from_env(urls)
    if client is not None:
        return client
    from thinkimg.config import ToolsConfig, load_yaml
    from thinkimg.tools import InProcessToolClient

    if tools_config is None or isinstance(tools_config, ToolsConfig):
        return InProcessToolClient(tools_config or ToolsConfig())
    return InProcessToolClient(load_yaml(tools_config, ToolsConfig))
