#!/usr/bin/env bash
# Install the Debian 12 (bookworm) packages Invite Desk needs to run and to be tested:
# the shared libraries the PySide6 wheels link against (offscreen and on a desktop),
# the PostgreSQL / MariaDB servers the database tests use, a D-Bus session bus plus
# gnome-keyring for the Secret Service keyring test, and chromium for the browser tests.
#
# Idempotent: when every package is already installed it does nothing (no apt-get update).
# Not root: prints what is missing and exits 0, so developers can run scripts/test.sh
# on a machine they set up themselves.
set -euo pipefail

# --- Qt 6 from the PySide6 wheels -------------------------------------------------------
# Found with `ldd`/`objdump -p` on PySide6 6.12 (QtCore/Gui/Widgets/Charts/Svg/Network,
# platforms/libqoffscreen.so, imageformats, iconengines): the wheels bundle Qt and ICU but
# link these system libraries directly. libGL/libEGL/libX11/libxkbcommon are needed even on
# the offscreen platform, because libQt6Gui itself links them.
qt_offscreen=(
    libegl1 libgl1 libx11-6 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3
    libglib2.0-0 zlib1g libzstd1 libbrotli1 libgssapi-krb5-2 libssl3
    fonts-dejavu-core   # Qt finds no fonts at all without one (blank text in screenshots)
)
# The xcb platform plugin (libqxcb.so + libQt6XcbQpa) for running the app on an X11/XWayland
# desktop via scripts/run.sh. Small; not used by the offscreen tests.
qt_desktop=(
    libxcb1 libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
    libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-shm0
    libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxcb-render0 libxcb-util1 libxcb-glx0
)
# --- test infrastructure ----------------------------------------------------------------
test_servers=(postgresql mariadb-server dovecot-imapd)  # dovecot: the bounce mailbox (IMAP)
# dbus-run-session lives in dbus-daemon; dbus-x11 satisfies gnome-keyring's "a session bus"
# dependency, otherwise apt picks dbus-user-session, which drags in systemd.
keyring=(dbus dbus-daemon dbus-x11 gnome-keyring libsecret-tools)
browser=(chromium chromium-driver)
misc=(ca-certificates)
# pdftoppm renders the referral report PDF page by page in its test.
pdf=(poppler-utils)

packages=("${qt_offscreen[@]}" "${qt_desktop[@]}" "${test_servers[@]}" "${keyring[@]}"
          "${browser[@]}" "${misc[@]}" "${pdf[@]}")

# Debian's own python3 has no ensurepip until python3-venv is installed
# (python.org / docker "python" images have it built in).
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    packages+=(python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
    # "install ok installed" only; half-configured or removed-with-config counts as missing
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-system-deps: all ${#packages[@]} Debian packages already installed" >&2
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: not root, skipping. Missing Debian packages:" >&2
    echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Wait (rather than fail) if another apt/dpkg holds the lock, e.g. unattended-upgrades on a
# freshly booted VM.
apt_opts=(-o DPkg::Lock::Timeout=600 -o APT::Acquire::Retries=3)

echo "install-system-deps: installing ${#missing[@]} packages: ${missing[*]}" >&2
apt-get "${apt_opts[@]}" update -q
apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}"
echo "install-system-deps: done" >&2
