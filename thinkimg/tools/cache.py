"""CachedToolClient: remembers tool results by (tool, arguments, image content) so repeated calls are free.

Every tool is deterministic, so the G generations of one GRPO prompt, repeated epochs and replays pay for OCR once.
Only successful results are cached (a refused call raises again); results are shared, so callers must not mutate
the returned images. The cache is a thread-safe LRU bounded by entry count.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from PIL import Image

from thinkimg.tools.base import ToolResult
from thinkimg.tools.client import ToolClient


def image_digest(image: Image.Image) -> str:
    """A content hash of the image's pixels, mode and size."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class CachedToolClient(ToolClient):
    """Wraps another client; ``hits`` and ``misses`` count lookups."""

    def __init__(self, client: ToolClient, max_entries: int = 4096):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.client = client
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str, str], ToolResult] = OrderedDict()
        self._lock = threading.Lock()

    def call(self, name: str, image: Image.Image, arguments: dict[str, Any] | None = None) -> ToolResult:
        key = (name, json.dumps(arguments or {}, sort_keys=True, default=str), image_digest(image))
        with self._lock:
            result = self._entries.get(key)
            if result is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return result
            self.misses += 1
        result = self.client.call(name, image, arguments)
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return result

    def specs(self) -> list[dict[str, Any]]:
        return self.client.specs()

    def close(self) -> None:
        self.client.close()

    def __len__(self) -> int:
        return len(self._entries)
