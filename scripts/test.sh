#!/usr/bin/env bash
# Install Invite Desk and run the checks: ruff, mypy (services), import-linter, pytest.
#
#   bash scripts/test.sh [PYTEST ARGS...]        e.g. bash scripts/test.sh -k invitations -x
#   INVITE_DESK_TEST_WORKERS=0 bash scripts/test.sh ...   one process, no pytest-xdist workers
#
# What it does, in order:
#   1. Debian packages (only when root; see scripts/install-system-deps.sh)
#   2. .venv with python3, then the project built as a wheel and installed non-editable with
#      its [test] extra: the tests run against the installed wheel, which proves the packaging
#   3. throwaway PostgreSQL + MariaDB servers (scripts/start-test-servers.sh)
#   4. a private D-Bus session with an unlocked gnome-keyring (Secret Service), offscreen Qt,
#      then the linters and pytest inside it
# Exit status: pytest's when it failed (5 = no tests collected), else 1 if a linter or the
# environment check failed, else 0. CI (CI=true) also makes missing servers / keyring fatal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
venv=$repo/.venv
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

# ------------------------------------------------------------------ part 2: inside the session
# scripts/test.sh re-runs itself under dbus-run-session with this marker as first argument.
in_session() {
    local failed=() rc=0

    # The Secret Service: `--unlock` starts gnome-keyring on this session bus and creates/unlocks
    # the "login" collection with this password (no prompt possible without a display).
    if command -v gnome-keyring-daemon >/dev/null; then
        local line
        while IFS= read -r line; do
            [[ $line == *=* ]] && export "${line?}"
        done < <(printf 'test' | gnome-keyring-daemon --unlock --components=secrets)
    fi
    # Proves keyring's default backend is SecretService and round-trips a password. Only then
    # do the keyring tests run for real (INVITE_DESK_TEST_KEYRING).
    if "$venv/bin/python" - <<'EOF'
import keyring
kr = keyring.get_keyring()
names = [type(b).__module__ for b in getattr(kr, "backends", [kr])]
assert any(n.endswith("SecretService") for n in names), f"keyring backend is {kr!r}"
keyring.set_password("invite-desk-ci", "probe", "secret-123")
assert keyring.get_password("invite-desk-ci", "probe") == "secret-123"
keyring.delete_password("invite-desk-ci", "probe")
print(f"keyring: {kr!r} works")
EOF
    then
        export INVITE_DESK_TEST_KEYRING=secretservice
    else
        echo "WARNING: no working Secret Service keyring; keyring tests will skip" >&2
        if [ -n "${CI:-}" ]; then failed+=(keyring); fi
    fi

    step() {  # step NAME CMD...: run a linter, remember failures and timing, keep going
        local name=$1 start=$SECONDS; shift
        echo "==> $name: $*"
        "$@" || failed+=("$name")
        printf '%-16s %4ss\n' "$name" $((SECONDS - start)) >>"$TEST_SH_TIMINGS"
    }
    step ruff "$venv/bin/ruff" check invite_desk tests bench
    step mypy "$venv/bin/mypy" invite_desk/services
    step lint-imports "$venv/bin/lint-imports"

    # pytest against the INSTALLED package, not ./invite_desk:
    #  - .venv/bin/pytest, not `python -m pytest` (which puts the cwd first on sys.path);
    #  - --import-mode=append puts the test dirs (and so the repo root) AFTER site-packages;
    #  - the guard plugin below fails the run if invite_desk still came from the source tree.
    local guard_dir
    guard_dir=$(mktemp -d)
    cat >"$guard_dir/invite_desk_ci_guard.py" <<'EOF'
"""Fail the run if the tests did not import invite_desk from the installed wheel."""
import os
import sys
import sysconfig

import pytest


def pytest_sessionstart(session):
    # Under pytest-xdist the main process collects nothing (its workers do), but it has
    # imported tests/conftest.py and so invite_desk: check there, where the error is shown.
    if "invite_desk" in sys.modules:
        _check(session, sys.modules["invite_desk"])


def pytest_collection_finish(session):
    mod = sys.modules.get("invite_desk")
    if mod is None:
        try:
            import invite_desk as mod
        except Exception:  # a broken package is for the tests to report
            return
    _check(session, mod)


def _check(session, mod):
    where = os.path.realpath(mod.__file__)
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"invite_desk imported from {os.path.dirname(where)}")
    if not where.startswith(site + os.sep):
        raise pytest.UsageError(
            f"tests imported invite_desk from {where}, not from the installed wheel in {site}"
        )
EOF
    # One pytest-xdist worker per core (INVITE_DESK_TEST_WORKERS=N to choose, 0 for none);
    # --dist loadgroup would keep tests marked xdist_group(name) on one worker, but with
    # pytest 9 and pytest-xdist 3.8 the mark has no effect (xdist renames item._nodeid,
    # which pytest 9 no longer reads): no test may rely on it. The 40 slowest test phases
    # (setup, call, teardown) are listed at the end, so the next speed-up starts from numbers.
    local parallel=(-n "${INVITE_DESK_TEST_WORKERS:-auto}" --dist loadgroup --durations=40)
    echo "==> pytest ${parallel[*]} $*"
    local start=$SECONDS
    set +e
    PYTHONPATH=$guard_dir${PYTHONPATH:+:$PYTHONPATH} \
        "$venv/bin/pytest" -p invite_desk_ci_guard -p no:cacheprovider --import-mode=append \
        "${parallel[@]}" "$@" 2>&1 | tee "$TEST_SH_PYTEST_LOG"
    rc=${PIPESTATUS[0]}
    set -e
    printf '%-16s %4ss\n' pytest $((SECONDS - start)) >>"$TEST_SH_TIMINGS"
    rm -rf "$guard_dir"

    printf '%s\n' "${failed[@]}" >>"$TEST_SH_FAILED"
    return "$rc"
}

if [ "${1:-}" = "__in_dbus_session__" ]; then
    shift
    in_session "$@"
    exit $?
fi

# ---------------------------------------------------------------------- part 1: preparation
# Per-phase timings go to a file, so the steps run inside the D-Bus session can add theirs.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TEST_SH_TIMINGS=$scratch/timings TEST_SH_FAILED=$scratch/failed \
    TEST_SH_PYTEST_LOG=$scratch/pytest.log
: >"$TEST_SH_TIMINGS"
: >"$TEST_SH_FAILED"
phase_start=$SECONDS
phase_done() {
    printf '%-16s %4ss\n' "$1" $((SECONDS - phase_start)) >>"$TEST_SH_TIMINGS"
    phase_start=$SECONDS
}

echo "==> system packages"
bash scripts/install-system-deps.sh
phase_done "system packages"

echo "==> virtualenv + install"
# Recreate the venv when it is missing or broken (e.g. python3 was upgraded underneath it).
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
# Build the wheel once, install it with its [test] dependencies, then force-reinstall it so the
# tests always see this checkout even when the version number did not change.
wheel_dir=$scratch/wheel
"${pip[@]}" wheel -q --no-deps -w "$wheel_dir" .
wheel=$(ls "$wheel_dir"/*.whl)
echo "built $(basename "$wheel")"
"${pip[@]}" install "${wheel}[test]"
"${pip[@]}" install -q --no-deps --force-reinstall "$wheel"
phase_done "venv + install"

echo "==> database and IMAP servers"
if [ -n "${INVITE_DESK_TEST_POSTGRES_URL:-}" ] && [ -n "${INVITE_DESK_TEST_MARIADB_URL:-}" ] \
        && [ -n "${INVITE_DESK_TEST_IMAP_URL:-}" ]; then
    echo "using the database URLs from the environment"
elif servers=$(bash scripts/start-test-servers.sh); then
    eval "$servers"
elif [ -n "${CI:-}" ]; then
    echo "ERROR: could not start the test database and IMAP servers" >&2
    exit 1
else
    echo "WARNING: no test servers; PostgreSQL/MariaDB/IMAP tests will skip" >&2
fi
phase_done "db servers"

# ------------------------------------------------------------------ environment for the tests
export QT_QPA_PLATFORM=offscreen
if [ -n "${CI:-}" ]; then
    export INVITE_DESK_REQUIRE_SERVERS=1   # tests fail instead of skipping without a server
fi
if [ -x /usr/bin/chromium ]; then export INVITE_DESK_CHROMIUM=/usr/bin/chromium; fi
if [ -x /usr/bin/chromedriver ]; then export INVITE_DESK_CHROMEDRIVER=/usr/bin/chromedriver; fi
# Private XDG dirs: Qt warns (and pytest-qt fails tests on warnings) without a 0700
# XDG_RUNTIME_DIR; the keyring, app data and config must not touch the user's real ones.
mkdir -p "$scratch"/{runtime,data,config,cache,state}
chmod 700 "$scratch/runtime"
export XDG_RUNTIME_DIR=$scratch/runtime XDG_DATA_HOME=$scratch/data \
    XDG_CONFIG_HOME=$scratch/config XDG_CACHE_HOME=$scratch/cache XDG_STATE_HOME=$scratch/state

# ------------------------------------------------------------------------ run the checks
set +e
if command -v dbus-run-session >/dev/null; then
    # A fresh session bus (none exists in CI) that dies with the tests, taking the keyring along.
    env -u DBUS_SESSION_BUS_ADDRESS dbus-run-session -- bash "$repo/scripts/test.sh" __in_dbus_session__ "$@"
else
    echo "WARNING: dbus-run-session not found (Debian package dbus-daemon); no keyring tests" >&2
    if [ -n "${CI:-}" ]; then echo keyring >>"$TEST_SH_FAILED"; fi
    bash "$repo/scripts/test.sh" __in_dbus_session__ "$@"
fi
rc=$?
set -e

# ------------------------------------------------------------------------------- summary
mapfile -t failed < <(grep -v '^$' "$TEST_SH_FAILED" || true)
echo
echo "==================================== summary ===================================="
sed 's/^/  /' "$TEST_SH_TIMINGS"
if [ ${#failed[@]} -gt 0 ]; then echo "  FAILED: ${failed[*]}"; else echo "  lint: ok"; fi
# pytest's own summary line, e.g. "==== 120 passed, 2 skipped in 41.20s ===="
summary=$(grep -E '^(=+ )?(no tests ran|[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)).* in [0-9.]+s( \([0-9:]+\))?( =+)?$' \
    "$TEST_SH_PYTEST_LOG" 2>/dev/null | tail -n 1 || true)
echo "  pytest (exit $rc): ${summary:-no summary line (see output above)}"
if [ "$rc" -eq 0 ] && [ ${#failed[@]} -gt 0 ]; then rc=1; fi
exit "$rc"
