#!/usr/bin/env bash
# Start N tool-server replicas on consecutive ports (default 3 from 8765) and stop them all on Ctrl-C.
# Point clients at all of them: HTTPToolClient(["http://127.0.0.1:8765", "http://127.0.0.1:8766", ...]).
# Usage: scripts/serve_replicas.sh [N] [BASE_PORT] [CONFIG]
set -euo pipefail
n=${1:-3}; base=${2:-8765}; config=${3:-configs/tools.yaml}
thinkimg=${THINKIMG:-.venv/bin/thinkimg}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for ((i = 0; i < n; i++)); do
  "$thinkimg" tools serve --config "$config" --port $((base + i)) &
  pids+=($!)
done
wait
