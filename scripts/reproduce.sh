#!/usr/bin/env bash
# Set up the environment (scripts/install.sh) and run the main job: `retconf reproduce`.
# Arguments go to `retconf reproduce` (default preset: tiny).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
exec "$VENV/bin/retconf" reproduce "$@"
