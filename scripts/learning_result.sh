#!/usr/bin/env bash
# The learning result (README, "The learning result"): the pipeline's stages at configs/learning_result.yaml's sizes,
# base -> SFT -> GRPO, each evaluated on the held-out eval split with and without tools. Outputs under
# artifacts/learning/, the table in metrics/learning_result.{json,md}, runs and the candidate in MLflow (mlruns/).
# ~32 min on 2 CPU cores (copy drill ~2.5-3.5, ~7 with a restart; warm start ~16, SFT ~7, GRPO ~1, evaluation ~4.5)
# after curation (~20 min for 6,000 trajectories; skipped when artifacts/learning/charts is already there).
# Usage: bash scripts/learning_result.sh [PARAMS]   (default configs/learning_result.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:-configs/learning_result.yaml}
T=${THINKIMG:-.venv/bin/thinkimg}
OUT=artifacts/learning
mkdir -p "$OUT"
$T data curate --params "$P" --metrics "$OUT/curate.json"
$T train base-model --params "$P" --metrics "$OUT/base_model.json"
$T train sft --params "$P" --fresh --metrics "$OUT/sft.json" --curve "$OUT/sft_curve.json"
$T train grpo --params "$P" --fresh --metrics "$OUT/grpo.json" --curve "$OUT/grpo_curve.json"
$T pipeline evaluate --params "$P"
cat metrics/learning_result.md
