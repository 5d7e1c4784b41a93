# Sourced by the scripts: make sure uv is there and the locked environment is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "installing uv (the project's package manager) with pip…" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv() { python3 -m uv "$@"; }
