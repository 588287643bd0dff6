"""MLflow helpers: one local store, runs with params and tags, metrics, artifacts.

The store is ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo>/mlruns/mlflow.db`` (``mlruns/`` is created;
MLflow 3.17 refuses a plain file store). Experiments created here keep their artifacts beside the database
(``<db folder>/artifacts/<experiment>``), so the artifact location never depends on the working directory.
Telemetry is off (:func:`thinkimg.config.offline_environment`). ``mlflow`` is imported only when a run starts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thinkimg.config import offline_environment

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "thinkimg"


def default_tracking_uri() -> str:
    return f"sqlite:///{REPO / 'mlruns' / 'mlflow.db'}"


def tracking_uri() -> str:
    """The tracking URI in use; for a sqlite store its folder is created."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def configure() -> str:
    """Telemetry off, tracking URI set; returns the URI."""
    offline_environment()
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def _experiment_id(name: str) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = _artifact_root(mlflow.get_tracking_uri())
    location = f"{root}/{_safe_name(name)}" if root else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _safe_name(name: str) -> str:
    """A metric/param key MLflow accepts (alphanumerics, ``_ - . / space``)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", str(name))


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float, bool)) else str(value)
    return text[:6000]


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": v}`` (for params like model args)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    return {prefix: value}


@contextmanager
def start_run(
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """An MLflow run in the project store with ``params`` (nested dicts flattened) and ``tags`` logged."""
    configure()
    import mlflow

    with mlflow.start_run(experiment_id=_experiment_id(experiment), run_name=run_name, nested=nested) as run:
        if params:
            flat = flatten("", dict(params))
            mlflow.log_params({_safe_name(k): _param_value(v) for k, v in flat.items()})
        if tags:
            mlflow.set_tags({_safe_name(k): _param_value(v) for k, v in tags.items()})
        yield run


def log_metrics(metrics: Mapping[str, Any], *, step: int | None = None) -> dict[str, float]:
    """Log the finite numeric values of ``metrics`` (None, NaN and non-numbers skipped); returns what was logged."""
    import mlflow

    clean = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            clean[_safe_name(key)] = float(value)
    if clean:
        mlflow.log_metrics(clean, step=step)
    return clean


def log_artifacts(paths: list[str | Path], *, artifact_path: str | None = None) -> None:
    """Log files (or whole folders) that exist; missing paths are skipped."""
    import mlflow

    for path in paths:
        path = Path(path)
        if path.is_dir():
            target = f"{artifact_path}/{path.name}" if artifact_path else path.name
            mlflow.log_artifacts(str(path), artifact_path=target)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
