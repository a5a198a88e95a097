#!/usr/bin/env bash
# Install Invite Desk into .venv and start it (on the embedded SQLite database by default).
#
#   bash scripts/run.sh [invite-desk ARGS...]    e.g. bash scripts/run.sh demo
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

bash scripts/install-system-deps.sh   # Qt's system libraries (only does anything as root)

# Recreate the venv when it is missing or broken (e.g. python3 was upgraded underneath it).
if ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    rm -rf .venv
    python3 -m venv .venv
fi
# A normal (non-editable) install, like a user's: build the wheel once, install it with its
# dependencies, then force-reinstall it so an unchanged version number still picks up this
# checkout.
wheel_dir=$(mktemp -d)
trap 'rm -rf "$wheel_dir"' EXIT
.venv/bin/python -m pip wheel -q --no-deps -w "$wheel_dir" .
wheel=$(ls "$wheel_dir"/*.whl)
.venv/bin/python -m pip install -q "$wheel"
.venv/bin/python -m pip install -q --no-deps --force-reinstall "$wheel"
rm -rf "$wheel_dir"
trap - EXIT

if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}${QT_QPA_PLATFORM:-}" ]; then
    echo "run.sh: no DISPLAY/WAYLAND_DISPLAY; the desktop window needs one" \
         "(QT_QPA_PLATFORM=offscreen works for 'screenshots'; 'portal' needs none)" >&2
fi
exec .venv/bin/invite-desk "$@"
