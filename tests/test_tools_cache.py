"""CachedToolClient: repeated calls on the same pixels are served from the cache, anything different is not."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from thinkimg.tools import CachedToolClient, InProcessToolClient, ToolError


class CountingClient(InProcessToolClient):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.lock = threading.Lock()

    def call(self, name, image, arguments=None):
        with self.lock:
            self.calls += 1
        return super().call(name, image, arguments)


def test_same_call_on_equal_pixels_runs_once(bar_chart):
    inner = CountingClient()
    cache = CachedToolClient(inner)
    args = {"image": "img_0", "y": 40}
    first = cache.call("DrawHorizontalLineByY", bar_chart.image, args)
    copy = bar_chart.image.copy()  # another object, same pixels
    again = cache.call("DrawHorizontalLineByY", copy, dict(args))
    assert inner.calls == 1 and again is first and (cache.hits, cache.misses) == (1, 1)
    # different arguments, tool or pixels miss the cache
    cache.call("DrawHorizontalLineByY", bar_chart.image, {"image": "img_0", "y": 41})
    cache.call("DrawVerticalLineByX", bar_chart.image, {"image": "img_0", "x": 40})
    changed = bar_chart.image.copy()
    changed.putpixel((0, 0), (1, 2, 3))
    cache.call("DrawHorizontalLineByY", changed, args)
    assert inner.calls == 4 and cache.misses == 4


def test_refused_calls_are_not_cached(bar_chart):
    inner = CountingClient()
    cache = CachedToolClient(inner)
    for _ in range(2):
        with pytest.raises(ToolError):
            cache.call("DrawHorizontalLineByY", bar_chart.image, {"image": "img_0", "y": "high"})
    assert inner.calls == 2 and len(cache) == 0


def test_lru_bound_and_thread_safety():
    inner = CountingClient()
    cache = CachedToolClient(inner, max_entries=2)
    images = [Image.new("RGB", (40, 30), (i, i, i)) for i in range(3)]
    for image in images:
        cache.call("DrawVerticalLineByX", image, {"x": 5})
    assert len(cache) == 2
    cache.call("DrawVerticalLineByX", images[0], {"x": 5})  # evicted: runs again
    assert inner.calls == 4
    threads = [threading.Thread(target=cache.call, args=("DrawVerticalLineByX", images[2], {"x": 5})) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 2 and cache.hits + cache.misses == 4 + 8
    with pytest.raises(ValueError):
        CachedToolClient(inner, max_entries=0)
