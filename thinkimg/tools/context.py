"""Shared state of a set of tools: the configuration, the OCR engine (built once, lazily) and an OCR cache."""

from __future__ import annotations

import threading
from collections import OrderedDict

from PIL import Image

from thinkimg.config import ToolsConfig
from thinkimg.images import image_hash
from thinkimg.tools.ocr import OCRBackend, TextLine, build_ocr_backend


class ToolContext:
    """What tools share. OCR results are cached by image content hash, so OCR, Point and ZoomInSubfigure
    on the same image pay for recognition once."""

    def __init__(self, config: ToolsConfig | None = None):
        self.config = config or ToolsConfig()
        self._ocr_backend: OCRBackend | None = None
        self._ocr_lock = threading.Lock()
        self._cache: OrderedDict[str, list[TextLine]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def ocr_backend(self) -> OCRBackend:
        """The configured OCR engine, built on first use."""
        if self._ocr_backend is None:
            with self._ocr_lock:
                if self._ocr_backend is None:
                    self._ocr_backend = build_ocr_backend(self.config.ocr)
        return self._ocr_backend

    def ocr(self, image: Image.Image) -> list[TextLine]:
        """Text lines of ``image`` (cached by content hash), confident ones only, in reading order."""
        size = self.config.ocr.cache_size
        key = image_hash(image) if size else ""
        if size:
            with self._cache_lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        lines = [ln for ln in self.ocr_backend.read(image) if ln.confidence >= self.config.ocr.min_confidence]
        lines = reading_order(lines)
        if size:
            with self._cache_lock:
                self._cache[key] = lines
                while len(self._cache) > size:
                    self._cache.popitem(last=False)
        return lines


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Sort lines top to bottom, grouping lines whose vertical centres share a row, then left to right."""
    rows: list[list[TextLine]] = []
    for ln in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        cy = (ln.box[1] + ln.box[3]) / 2
        if rows:
            last = rows[-1]
            ref = last[0]
            half = max(2.0, (ref.box[3] - ref.box[1]) / 2)
            if abs(cy - (ref.box[1] + ref.box[3]) / 2) <= half:
                last.append(ln)
                continue
        rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.box[0])]
