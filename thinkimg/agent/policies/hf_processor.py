"""Load a Qwen-VL processor with or without torchvision.

transformers 5.x makes the (torchvision-only) video processor a required part of every Qwen-VL processor, so on a
machine without torchvision ``AutoProcessor`` cannot load one. :class:`ImageOnlyQwen2VLProcessor` is the same
processor without the video part; it also turns the numpy ``pixel_values`` / ``image_grid_thw`` the PIL image backend
returns into torch tensors (TRL's tool loop calls ``.prod()`` on them). See KNOWLEDGE.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoImageProcessor, AutoTokenizer, Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


def has_torchvision() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken install that fails on import
        return False
    return True


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """A Qwen2-VL-style processor (also fits Qwen2.5-VL / tiny models) with no video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs.get("videos") is not None:
            raise ValueError("this processor has no video processor (torchvision is not installed)")
        out = super().__call__(*args, **kwargs)
        import numpy as np
        import torch

        for key in ("pixel_values", "image_grid_thw"):
            value = out.get(key)
            if value is None or isinstance(value, torch.Tensor):
                continue
            if isinstance(value, list):
                value = np.stack([np.asarray(v) for v in value]) if value else np.zeros((0, 3), dtype=np.int64)
            out[key] = torch.as_tensor(np.asarray(value))
        return out

    def save_pretrained(self, save_directory, *args: Any, **kwargs: Any):
        """Saved as a plain ``Qwen2VLProcessor`` (with a video processor entry mirroring the image processor's
        settings) so ``AutoProcessor`` loads it where torchvision exists."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
            path = Path(save_directory) / name
            if not path.exists():
                continue
            data = json.loads(path.read_text())
            changed = False
            if data.get("processor_class") == type(self).__name__:
                data["processor_class"], changed = "Qwen2VLProcessor", True
            image = data.get("image_processor")
            if (name == "processor_config.json" and "video_processor" not in data and isinstance(image, dict)
                    and image.get("image_processor_type", "").startswith("Qwen2VLImageProcessor")):
                data["video_processor"] = {**{k: v for k, v in image.items() if k in _VIDEO_KEYS},
                                           "video_processor_type": "Qwen2VLVideoProcessor"}
                changed = True
            if changed:
                path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return result


#: Image processor settings a Qwen2-VL video processor shares.
_VIDEO_KEYS = ("size", "patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std", "do_resize",
               "do_rescale", "do_normalize", "do_convert_rgb", "resample", "rescale_factor")


def load_processor(path: str | Path, **kwargs: Any):
    """``AutoProcessor`` when torchvision imports; otherwise the image-only Qwen-VL processor."""
    if has_torchvision():
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(str(path), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    image_processor = AutoImageProcessor.from_pretrained(str(path), **kwargs)
    template = getattr(tokenizer, "chat_template", None)
    template_file = Path(path) / "chat_template.jinja"
    if Path(path).is_dir() and template_file.exists():
        template = template_file.read_text()
    return ImageOnlyQwen2VLProcessor(image_processor, tokenizer, chat_template=template)
