"""The OCR backend interface: an image in, text lines with pixel boxes and confidences out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class TextLine:
    """One recognised piece of text: its string, its pixel box ``(x0, y0, x1, y1)`` and a confidence in [0, 1]."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float

    @property
    def center(self) -> tuple[int, int]:
        """The box centre in pixels."""
        x0, y0, x1, y1 = self.box
        return (x0 + x1) // 2, (y0 + y1) // 2

    def to_dict(self) -> dict:
        return {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 4)}


class OCRBackend(ABC):
    """An OCR engine. Implementations must be safe to call from several threads (lock inside if needed)."""

    name: str

    @abstractmethod
    def read(self, image: Image.Image) -> list[TextLine]:
        """Recognise the text of an RGB image; boxes are pixel coordinates of that image."""
