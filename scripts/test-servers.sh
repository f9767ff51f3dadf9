#!/bin/sh
# Unpack Courier, Cyrus and GNU Mailutils imap4d for the tests, WITHOUT installing them
# (Debian's IMAP servers conflict with each other and with dovecot-imapd). Their .deb files
# and those of the libraries they need that are not installed are fetched with
# 'apt-get download' and unpacked with 'dpkg-deb -x' into .test-servers/root; the test
# fixtures (tests/servers.py) run them in a private mount namespace where that tree is
# overlaid on /usr, so their compiled-in paths work. Idempotent: a complete tree is kept.
# Run by 'sh scripts/setup.sh --test' after its apt-get update; needs no sudo when root.
set -eu
cd "$(dirname "$0")/.."
DEST=.test-servers
ROOT="$DEST/root"
STAMP="$DEST/complete"
# One group per server: apt resolves each group alone (they conflict with each other).
GROUPS_LIST="courier-imap,courier-authdaemon,courier-authlib-userdb cyrus-imapd mailutils-imap4d"
# What the servers run (checked with ldd after unpacking).
BINARIES="usr/sbin/couriertcpd usr/lib/courier/courier/imaplogin usr/bin/imapd
usr/lib/courier/courier-authlib/authdaemond usr/lib/courier-authlib/libauthuserdb.so
usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd usr/lib/cyrus/bin/ctl_cyrusdb usr/sbin/imap4d"

if [ -f "$STAMP" ] && [ -d "$ROOT/usr" ]; then
  exit 0
fi
rm -rf "$DEST/debs" "$DEST/root.new"
mkdir -p "$DEST/debs" "$DEST/root.new"
: > "$DEST/packages"
for group in $GROUPS_LIST; do
  pkgs=$(echo "$group" | tr ',' ' ')
  # The packages apt would newly install for this group (not upgrades, not removals):
  # the server itself, its helpers and the libraries missing here. MTAs and other
  # programs it merely depends on are left out.
  # shellcheck disable=SC2086
  apt-get -s -qq install --no-install-recommends $pkgs 2>/dev/null \
    | sed -n 's/^Inst \([^ ]*\) (.*/\1/p' \
    | grep -E '^(lib|courier-|cyrus-|mailutils|gamin$)' >> "$DEST/packages" || true
  for p in $pkgs; do grep -qx "$p" "$DEST/packages" || echo "$p" >> "$DEST/packages"; done
done
sort -u -o "$DEST/packages" "$DEST/packages"
# shellcheck disable=SC2046
(cd "$DEST/debs" && apt-get download -qq -o APT::Sandbox::User=root $(cat ../packages))
for deb in "$DEST"/debs/*.deb; do
  dpkg-deb -x "$deb" "$DEST/root.new"
done
# Debian 12 has merged /usr: /lib, /bin and /sbin are /usr's, and only /usr is overlaid.
for d in lib lib64 bin sbin; do
  if [ -d "$DEST/root.new/$d" ]; then
    mkdir -p "$DEST/root.new/usr/$d"
    cp -a "$DEST/root.new/$d/." "$DEST/root.new/usr/$d/"
    rm -rf "${DEST:?}/root.new/$d"
  fi
done
missing=""
libpath="$DEST/root.new/usr/lib:$DEST/root.new/usr/lib/x86_64-linux-gnu:$DEST/root.new/usr/lib/courier-authlib"
for bin in $BINARIES; do
  if [ ! -e "$DEST/root.new/$bin" ]; then
    missing="$missing $bin(absent)"
    continue
  fi
  libs=$(LD_LIBRARY_PATH="$libpath" ldd "$DEST/root.new/$bin" 2>&1 | sed -n 's/^\s*\([^ ]*\) => not found.*/\1/p' | tr '\n' ' ')
  [ -z "$libs" ] || missing="$missing $bin($libs)"
done
if [ -n "$missing" ]; then
  echo "test-servers: unresolved after unpacking:$missing" >&2
  exit 1
fi
rm -rf "$ROOT"
mv "$DEST/root.new" "$ROOT"
rm -rf "$DEST/debs"
date -u +%Y-%m-%dT%H:%M:%SZ > "$STAMP"
