"""MLflow helpers: one local store, runs with params and tags, metrics, artifacts.

The store is ``$MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo>/mlruns/mlflow.db`` (``mlruns/`` is created;
MLflow 3.17 refuses a plain file store). Experiments created here keep their artifacts beside the database
(``<db folder>/artifacts/<experiment>``), so the artifact location never depends on the working directory.
Telemetry is off (:func:`thinkimg.config.offline_environment`). ``mlflow`` is imported only when a run starts.

Pipeline runs: when ``$THINKIMG_MLFLOW_PARENT_RUN_ID`` names a run (the pipeline's parent run, set by
``thinkimg pipeline run`` and the Prefect flows for the stage processes they start), every run started here is a
child of it, in its experiment. Every run carries lineage tags: git commit, ``data.dvc`` md5 and params hash.
The model registry helpers register a model folder logged to a run and move the ``champion`` alias.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thinkimg.config import offline_environment

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "thinkimg"
#: Environment variable naming the pipeline's parent run; runs started while it is set become its children.
PARENT_RUN_ENV = "THINKIMG_MLFLOW_PARENT_RUN_ID"
#: Environment variable naming the params file whose hash the lineage tags carry (default ``<repo>/params.yaml``).
PARAMS_ENV = "THINKIMG_PARAMS"


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


def lineage_tags(repo: str | Path | None = None, params_file: str | Path | None = None) -> dict[str, str]:
    """Tags tying a run to its inputs: ``git.commit`` (``+dirty`` when the tree has changes), ``data.md5`` (the md5
    ``data.dvc`` records) and ``params.hash`` (sha256 of the params file, 16 hex). Unknown values are omitted."""
    repo = Path(repo) if repo else Path.cwd()
    tags: dict[str, str] = {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                   capture_output=True, text=True, timeout=10)
            tags["git.commit"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    data_dvc = repo / "data.dvc"
    if data_dvc.is_file():
        match = re.search(r"md5:\s*([0-9a-f]{32}(?:\.dir)?)", data_dvc.read_text(encoding="utf-8"))
        if match:
            tags["data.md5"] = match.group(1)
    params = Path(params_file or os.environ.get(PARAMS_ENV) or repo / "params.yaml")
    if params.is_file():
        tags["params.hash"] = hashlib.sha256(params.read_bytes()).hexdigest()[:16]
    return tags


@contextmanager
def start_run(
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """An MLflow run in the project store with ``params`` (nested dicts flattened), ``tags`` and the lineage tags.

    Inside an active run it is nested in it; otherwise, with ``$THINKIMG_MLFLOW_PARENT_RUN_ID`` set, it is a child
    of that run and goes into the parent's experiment. The run ends FAILED when the block raises."""
    configure()
    import mlflow

    parent = os.environ.get(PARENT_RUN_ENV) or None
    kwargs: dict[str, Any] = {"run_name": run_name}
    if mlflow.active_run() is not None:
        kwargs.update(experiment_id=mlflow.active_run().info.experiment_id, nested=True)
    elif parent:
        try:
            parent_run = mlflow.get_run(parent)
        except Exception as exc:  # noqa: BLE001 - the message says which variable holds what
            raise RuntimeError(f"${PARENT_RUN_ENV}={parent}: no such MLflow run in {mlflow.get_tracking_uri()} "
                               f"({exc})") from None
        kwargs.update(experiment_id=parent_run.info.experiment_id, parent_run_id=parent)
    else:
        kwargs.update(experiment_id=_experiment_id(experiment), nested=nested)
    with mlflow.start_run(**kwargs) as run:
        if params:
            flat = flatten("", dict(params))
            mlflow.log_params({_safe_name(k): _param_value(v) for k, v in flat.items()})
        all_tags = {**lineage_tags(), **dict(tags or {})}
        if parent:
            all_tags.setdefault("thinkimg.parent_run_id", parent)
        mlflow.set_tags({_safe_name(k): _param_value(v) for k, v in all_tags.items()})
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


# ----------------------------------------------------------------------------------------------------- registry


def log_model_folder(folder: str | Path, *, artifact_path: str = "model") -> str:
    """Log the files of a saved model folder (not its ``checkpoint-*`` subfolders) to the active run; returns the
    artifact URI of the logged folder (what :func:`register_model` takes as ``source``)."""
    import mlflow

    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    if not files:
        raise FileNotFoundError(f"{folder}: no model files to log")
    for path in files:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    return f"{mlflow.get_artifact_uri()}/{artifact_path}"


def register_model(name: str, source: str, run_id: str, *, tags: Mapping[str, Any] | None = None) -> str:
    """A new version of registered model ``name`` (created if missing) pointing at ``source``; returns the version."""
    configure()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description="ThinkIMG policy: a VLM trained to think with images.")
        except MlflowException:  # created concurrently
            pass
    version = client.create_model_version(name, source=source, run_id=run_id,
                                          tags={_safe_name(k): _param_value(v) for k, v in (tags or {}).items()})
    return str(version.version)


def alias_version(name: str, alias: str) -> Any | None:
    """The model version holding ``alias`` (e.g. ``champion``), or None."""
    configure()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote_if_better(name: str, version: str, score: float, *, alias: str = "champion",
                      score_tag: str = "eval.accuracy") -> bool:
    """Move ``alias`` to ``version`` when ``score`` beats the score tagged on the version holding it (or none holds
    it); the score is recorded on ``version`` as ``score_tag``. Returns whether the alias moved."""
    configure()
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_model_version_tag(name, version, score_tag, str(score))
    current = alias_version(name, alias)
    if current is not None:
        try:
            best = float(current.tags.get(score_tag, "nan"))
        except ValueError:
            best = math.nan
        if math.isfinite(best) and score <= best:
            return False
    client.set_registered_model_alias(name, alias, version)
    return True
