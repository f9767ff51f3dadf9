#!/bin/sh
# Install what Help desk needs on Debian/Ubuntu, into ./.venv.
#   sh scripts/setup.sh          the app (Qt runtime libraries + the package)
#   sh scripts/setup.sh --test   also Dovecot, mbsync, Xvfb and the test tools, and Courier,
#                                Cyrus and imap4d unpacked into .test-servers/ (not installed)
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="python3 python3-venv python3-pip libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 \
libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 \
libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1 fonts-dejavu-core fonts-droid-fallback \
fonts-noto-color-emoji"
EXTRA="."
if [ "${1:-}" = "--test" ]; then
  PKGS="$PKGS dovecot-imapd isync xvfb"
  EXTRA=".[test]"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
# Debian starts a system-wide Dovecot on install; the tests run private ones on free ports.
if [ "${1:-}" = "--test" ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
fi
if [ "${1:-}" = "--test" ]; then
  $SUDO sh scripts/test-servers.sh
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "$EXTRA"
