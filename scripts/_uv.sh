# Sourced by the scripts: find uv (the project's package manager), installing it if it is missing.
#
# uv is taken from, in order: $UV, the private venv .cache/uv-tool if an earlier run made it, a
# `uv` on PATH, `python3 -m uv`; else that private venv is made. It is how a stock Debian/Ubuntu
# python3 works: pip into the
# system Python is refused there (PEP 668, "externally-managed-environment"), so uv goes into a
# venv that only the scripts use, installed from PyPI with that venv's own pip. Nothing is
# installed into the system Python, and nothing but the package registries is reached.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_find_uv() {
  if [ -n "${UV:-}" ] && "$UV" --version >/dev/null 2>&1; then
    UV_CMD=("$UV")
    return 0
  fi
  local tool_venv=.cache/uv-tool
  if [ -x "$tool_venv/bin/uv" ]; then
    UV_CMD=("$tool_venv/bin/uv")
  elif command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then
    UV_CMD=("$(command -v uv)")
  elif python3 -m uv --version >/dev/null 2>&1; then
    UV_CMD=(python3 -m uv)
  else
    echo "installing uv into a private venv ($tool_venv)…" >&2
    rm -rf "$tool_venv"
    if ! python3 -m venv "$tool_venv" >/dev/null 2>&1; then
      # Debian/Ubuntu ship venv's pip bootstrap in a package of its own.
      echo "python3 cannot make a venv here; installing Debian's python3-venv…" >&2
      rm -rf "$tool_venv"
      _as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$tool_venv"
    fi
    "$tool_venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
    UV_CMD=("$tool_venv/bin/uv")
  fi
}
_find_uv
uv() { "${UV_CMD[@]}" "$@"; }
