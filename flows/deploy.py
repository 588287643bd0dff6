"""Serve the deployments ``train-grpo/train-grpo`` and ``re-evaluate/re-evaluate`` (cron: ``pipeline.reevaluate_cron``).

    PREFECT_API_URL=http://127.0.0.1:4200/api python flows/deploy.py [--params params.yaml]

``make up`` starts it beside the Prefect server and the MLflow UI. Runs execute in this process's machine, in the
repository; no work pool is needed. Stopping it leaves the schedules active (``pause_on_shutdown=False``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefect import serve  # noqa: E402

from flows.pipeline import re_evaluate, train_grpo  # noqa: E402
from thinkimg.pipeline import load_params  # noqa: E402


def deployments(params: str = "params.yaml") -> list:
    """The two deployments, parameters pinned to ``params`` and this repository."""
    _, pipe = load_params(REPO / params if not Path(params).is_absolute() else params)
    return [
        train_grpo.to_deployment(name="train-grpo", parameters={"params": params, "repo": str(REPO)},
                                 description="The whole pipeline: curate -> base-model -> sft -> grpo -> evaluate."),
        re_evaluate.to_deployment(name="re-evaluate", cron=pipe.reevaluate_cron,
                                  parameters={"params": params, "repo": str(REPO)},
                                  description="Re-evaluate the registered champion on the configured tasks."),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file, relative to the repository")
    args = ap.parse_args()
    serve(*deployments(args.params), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
