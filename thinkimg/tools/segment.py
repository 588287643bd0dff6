"""Colour-region segmentation around a point: the connected region of (nearly) the seed's colour.

Charts are flat-coloured: a bar, a wedge or an area is one connected region of one colour, so a flood fill with
a small colour tolerance finds it exactly. When the point lands on text, an edge or an anti-aliased border, the
seed is snapped to the nearest pixel whose neighbourhood is one solid colour, preferring coloured pixels over the
background (a point on a value label just above a bar means the bar, not the white between the letters).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass
class Region:
    """A segmented region: pixel box ``(x0, y0, x1, y1)`` with x1, y1 exclusive, mask over the whole image."""

    box: tuple[int, int, int, int]
    area: int
    color: tuple[int, int, int]
    seed: tuple[int, int]
    mask: np.ndarray

    @property
    def center(self) -> tuple[int, int]:
        """The median pixel of the region (inside it for convex shapes; a bar's or wedge's middle)."""
        ys, xs = np.nonzero(self.mask)
        return int(np.median(xs)), int(np.median(ys))


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 C-contiguous array of an image (PIL or array)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3], dtype=np.uint8)


def background_color(arr: np.ndarray, depth: int = 8) -> tuple[int, int, int]:
    """The most common colour of the image's outer band ``depth`` pixels deep (charts: the figure background,
    usually white; a thin frame drawn along the edge is outvoted)."""
    h, w = arr.shape[:2]
    d = max(1, min(depth, h // 4, w // 4))
    step = max(1, (h + w) // 1000)  # sample large images
    band = np.concatenate([
        arr[:d, ::step].reshape(-1, 3), arr[h - d:, ::step].reshape(-1, 3),
        arr[::step, :d].reshape(-1, 3), arr[::step, w - d:].reshape(-1, 3),
    ]).astype(np.int32)
    keys = (band[:, 0] << 16) | (band[:, 1] << 8) | band[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    key = int(values[np.argmax(counts)])
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def solid_map(patch: np.ndarray, tol: int) -> np.ndarray:
    """True where the 3x3 neighbourhood is one colour (every channel's max - min <= ``tol``)."""
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(patch, kernel, borderType=cv2.BORDER_REPLICATE) - cv2.erode(
        patch, kernel, borderType=cv2.BORDER_REPLICATE
    )
    return spread.max(axis=2) <= tol


def snap_seed(
    arr: np.ndarray,
    x: int,
    y: int,
    *,
    radius: int = 12,
    tol: int = 12,
    background: tuple[int, int, int] | None = None,
    text_radius: int = 24,
) -> tuple[int, int]:
    """The pixel to flood from.

    (x, y) itself when its 3x3 neighbourhood is one colour that is not the ``background``. A point on text, an
    edge or anti-aliasing (a mixed neighbourhood), or on background right next to text (between the letters of a
    label), moves to the nearest solid non-background pixel within ``text_radius`` (a value label's bar), else to
    the nearest solid pixel within ``radius``. A point on plain background stays where it is.
    """
    h, w = arr.shape[:2]
    r = max(radius, text_radius)
    y0, y1, x0, x1 = max(0, y - r - 1), min(h, y + r + 2), max(0, x - r - 1), min(w, x + r + 2)
    patch = np.ascontiguousarray(arr[y0:y1, x0:x1])
    solid = solid_map(patch, tol)
    sx, sy = x - x0, y - y0
    if background is not None:
        coloured = np.abs(patch.astype(np.int16) - np.array(background, np.int16)).max(axis=2) > 2 * tol
    else:
        coloured = np.ones(solid.shape, bool)
    if solid[sy, sx]:
        if coloured[sy, sx]:
            return x, y
        near = solid[max(0, sy - 3):sy + 4, max(0, sx - 3):sx + 4]
        if near.all():  # plain background, no text around: nothing to snap to
            return x, y
    ys, xs = np.nonzero(solid)
    d2 = (xs - sx) ** 2 + (ys - sy) ** 2
    for pick, reach in ((coloured[ys, xs], text_radius), (np.ones(len(ys), bool), radius)):
        ok = pick & (d2 <= reach * reach)
        if ok.any():
            i = int(np.argmin(np.where(ok, d2, np.iinfo(d2.dtype).max)))
            return int(xs[i] + x0), int(ys[i] + y0)
    return x, y


def region_around(image: Image.Image | np.ndarray, x: int, y: int, *, tolerance: int = 24, snap: bool = True) -> Region:
    """The 4-connected region of pixels within ``tolerance`` (max channel difference) of the seed's colour."""
    arr = as_rgb_array(image)
    h, w = arr.shape[:2]
    if snap:
        x, y = snap_seed(arr, x, y, background=background_color(arr))
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    diff = (tolerance, tolerance, tolerance)
    # floodFill only reads the image here (MASK_ONLY), but its binding wants a writable array.
    cv2.floodFill(arr if arr.flags.writeable else arr.copy(), flood, (int(x), int(y)), (0, 0, 0), diff, diff, flags)
    mask = flood[1:-1, 1:-1].astype(bool)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Region(box=box, area=int(np.count_nonzero(mask)), color=tuple(int(c) for c in arr[y, x]),
                  seed=(int(x), int(y)), mask=mask)
