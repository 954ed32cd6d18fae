#!/bin/sh
# `make uninstall-appliance`: take Klick off this machine (or the image under DESTDIR).
#
# Removes the program (/opt/klick), the units, the udev rule and the other system files, and
# disables the units. Keeps the settings (/etc/klick), the cards, questionnaire and usage log
# (/var/lib/klick) and the klick user, unless PURGE=1, which removes those too: a pilot's data is
# never deleted by accident.
set -eu

D=${DESTDIR:-}
D=${D%/}
PURGE=${PURGE:-0}
UNITS="klick-retry@klick-bridge.timer klick-retry@klick-launcher.timer klick-fleet.service klick-launcher.service klick-bridge.service"

say() { printf '%s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "uninstall-appliance: this needs root: sudo make uninstall-appliance" >&2; exit 1; }

live=0
[ -z "$D" ] && [ -d /run/systemd/system ] && live=1
if command -v systemctl >/dev/null 2>&1 && [ -e "$D/etc/systemd/system/klick-bridge.service" ]; then
    if [ "$live" = 1 ]; then
        systemctl disable --now --quiet $UNITS || true
    else
        systemctl --root="${D:-/}" disable --quiet $UNITS || true
    fi
    say "  disabled $UNITS"
fi

for f in /etc/systemd/system/klick-bridge.service /etc/systemd/system/klick-launcher.service /etc/systemd/system/klick-fleet.service \
         /etc/systemd/system/klick-retry@.timer /etc/udev/rules.d/99-klick.rules /etc/pam.d/klick-kiosk \
         /etc/modprobe.d/klick-nfc.conf /etc/sysusers.d/klick.conf /etc/tmpfiles.d/klick.conf \
         /etc/chromium/policies/managed/klick.json; do
    if [ -e "$D$f" ] || [ -L "$D$f" ]; then
        rm -f "$D$f"
        say "  removed $f"
    fi
done
if [ -d "$D/opt/klick" ]; then
    rm -rf "$D/opt/klick"
    say "  removed /opt/klick"
fi
[ "$live" = 1 ] && systemctl daemon-reload
[ "$live" = 1 ] && command -v udevadm >/dev/null 2>&1 && udevadm control --reload

if [ "$PURGE" = 1 ]; then
    rm -rf "$D/etc/klick" "$D/var/lib/klick" "$D/run/klick"
    say "  PURGE=1: removed /etc/klick and /var/lib/klick (settings, cards, questionnaire, usage log)"
    if grep -q '^klick:' "$D/etc/passwd" 2>/dev/null; then
        if [ -n "$D" ]; then userdel --root "$D" klick; else userdel klick; fi
        if grep -q '^klick:' "$D/etc/group" 2>/dev/null; then
            if [ -n "$D" ]; then groupdel --root "$D" klick; else groupdel klick; fi
        fi
        say "  PURGE=1: removed the klick user"
    fi
else
    kept=""
    for dir in /etc/klick /var/lib/klick; do [ -d "$D$dir" ] && kept="$kept $dir"; done
    [ -z "$kept" ] || say "Kept$kept and the klick user (PURGE=1 removes them too)."
fi
say "Klick is uninstalled${D:+ from $D}. The Debian packages it installed (cage xwayland chromium and the libraries)"
say "stay: remove them with apt-get if nothing else needs them."
