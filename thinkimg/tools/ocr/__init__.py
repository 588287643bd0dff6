"""OCR backends, registered by name and imported only when chosen (their dependencies are optional)."""

from __future__ import annotations

import importlib

from thinkimg.config import OCRConfig
from thinkimg.tools.ocr.base import OCRBackend, TextLine

#: backend name -> "module:Class"; the module is imported only when that backend is built.
OCR_BACKENDS: dict[str, str] = {
    "rapidocr": "thinkimg.tools.ocr.rapid:RapidOCRBackend",
    "tesseract": "thinkimg.tools.ocr.tesseract:TesseractBackend",
    "easyocr": "thinkimg.tools.ocr.easy:EasyOCRBackend",
}


def build_ocr_backend(config: OCRConfig) -> OCRBackend:
    """Instantiate the configured backend; a missing optional dependency is a clear error saying what to install."""
    target = OCR_BACKENDS.get(config.backend)
    if target is None:
        raise ValueError(f"unknown OCR backend {config.backend!r}; choose one of {sorted(OCR_BACKENDS)}")
    module_name, cls_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)(config)


__all__ = ["OCR_BACKENDS", "OCRBackend", "TextLine", "build_ocr_backend"]
