"""Start the tool server as a subprocess, wait until it is healthy, and always stop it.

The listening socket is bound here (port 0 = a free port, no race) and handed to the child, which serves on it.
On Linux the child asks the kernel to terminate it when its parent dies (PR_SET_PDEATHSIG), so a killed
pipeline never leaves a tool server behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from thinkimg.config import ToolsConfig

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ToolServerError(RuntimeError):
    """The tool server did not come up; the message holds the end of its log."""


class ToolServer:
    """Context manager running ``thinkimg tools serve`` on ``host`` (127.0.0.1) and a free port.

    >>> with ToolServer(config) as server:
    ...     client = HTTPToolClient(server.url)
    """

    def __init__(
        self,
        config: ToolsConfig | str | Path | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        startup_timeout_s: float = 180.0,
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
    ):
        if isinstance(config, (str, Path)):
            from thinkimg.config import load_yaml

            config = load_yaml(config, ToolsConfig)
        self.config = config or ToolsConfig()
        self.host = host or self.config.server.host
        self.port = 0 if port is None else port  # default: a free port chosen by the kernel
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:41234``."""
        if self._url is None:
            raise ToolServerError("tool server is not running")
        return self._url

    def start(self) -> ToolServer:
        """Bind, spawn, and block until ``/health`` answers (or raise with the server's log)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="thinkimg-tools-")
        cfg_path = Path(self._tmp.name) / "tools.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config.model_dump(mode="json")))
        log_path = self.log_path or Path(self._tmp.name) / "server.log"
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(2048)
        host, port = self._sock.getsockname()[:2]
        self._url = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
        fd = self._sock.fileno()
        cmd = [sys.executable, "-m", "thinkimg.cli", "tools", "serve", "--config", str(cfg_path), "--fd", str(fd)]
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            cmd,
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._log_path = log_path
        self._sock.close()  # the child holds its own copy; a dead child must not leave a listening socket here
        self._sock = None
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.02
        with httpx.Client(timeout=2.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise ToolServerError(f"tool server exited with code {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if http.get(self.url + "/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ToolServerError(
                        f"tool server not healthy after {self.startup_timeout_s:g} s:\n{self.log_tail()}"
                    )
                time.sleep(delay)  # polling the health endpoint, backing off
                delay = min(delay * 1.5, 0.5)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self._log_path).read_text(errors="replace")[-chars:]
        except (OSError, AttributeError):
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s``) and release the socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._url = None

    def __enter__(self) -> ToolServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
