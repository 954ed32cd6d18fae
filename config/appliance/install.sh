#!/bin/sh
# `make install-appliance`: turn this machine (or the image under DESTDIR) into a Klick appliance.
#
#   /opt/klick/venv      Klick itself (pip install of this checkout, not editable)
#   /opt/klick/share     README, reader firmware, the shipped default settings
#   /etc/klick           klick.yaml (an edited one is never overwritten)
#   /var/lib/klick       cards, usage log, browser profiles (the klick user's home), and
#                        questionnaire.yaml, there so `klick fleet` may replace it with a pushed
#                        one (an edited or pushed one is never overwritten)
#   /run/klick           the bridge's socket (made by the unit at start)
#   /etc/systemd/system  klick-bridge.service, klick-launcher.service, klick-retry@.timer
#   /etc/udev/rules.d    99-klick.rules; /etc/sysusers.d, /etc/tmpfiles.d, /etc/pam.d, /etc/modprobe.d
#   /etc/chromium/policies/managed/klick.json   what no site may do in the kiosk browser
#
# Idempotent: each file is written only when its content, mode or owner differs, so a second
# run changes nothing and says so. Variables:
#   DESTDIR=/path   install into an image or scratch root: users are created in its /etc/passwd
#                   (systemd-sysusers --root), units enabled with `systemctl --root`, nothing is
#                   started, no Debian packages installed
#   SKIP_VENV=1     leave out the venv (what `make test` does, to stay fast and offline)
#   SKIP_APT=1      do not install the Debian packages the appliance runs on (the lists below)
#   PIP_ARGS=...    extra arguments for the venv's pip install (e.g. --no-deps for a quick check)
#   VENV_PYTHON=... the interpreter the venv is made from (default /usr/bin/python3)
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
D=${DESTDIR:-}
D=${D%/}
SKIP_VENV=${SKIP_VENV:-0}
SKIP_APT=${SKIP_APT:-0}
PIP_ARGS=${PIP_ARGS:-}
VENV_PYTHON=${VENV_PYTHON:-/usr/bin/python3}
# What the appliance runs on. The kiosk: cage owns the screen; xwayland, because the launcher's
# window is an X11 one (Kivy's SDL has no Wayland driver) and cage shows X11 windows only through
# XWayland, which it starts when the launcher connects (cage does not pull it in: without it the
# screen stays black); chromium for calls, SVT and web cards. Then the venv maker, the
# libraries Kivy and nfcpy load at run time, and alsa-utils: its aplay plays the chime when
# someone waits in a call card's room (the kiosk has no PulseAudio, so no paplay).
KIOSK_PACKAGES="cage xwayland chromium"
RUNTIME_PACKAGES="python3-venv libgl1 libegl1 libmtdev1 libusb-1.0-0 alsa-utils"
APT_PACKAGES="$KIOSK_PACKAGES $RUNTIME_PACKAGES"
VENV=/opt/klick/venv
changed=0

say() { printf '%s\n' "$*"; }
die() { printf 'install-appliance: %s\n' "$*" >&2; exit 1; }
note() { changed=$((changed + 1)); say "  $*"; }

[ "$(id -u)" = 0 ] || die "this needs root: sudo make install-appliance (or, for an image, sudo make install-appliance DESTDIR=/path)"
[ -z "$D" ] || [ -d "$D" ] || mkdir -p "$D"

# put MODE OWNER:GROUP SRC DEST — write DEST (under DESTDIR) only if anything differs.
put() {
    mode=$1 owner=$2 src=$3 dest=$D$4
    uid=$(id_of passwd "${owner%%:*}") gid=$(id_of group "${owner##*:}")
    if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest" \
        && [ "$(stat -c '%a %u %g' "$dest")" = "$mode $uid $gid" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    tmp="$dest.klick-new"
    cp "$src" "$tmp" && chmod "$mode" "$tmp" && chown "$uid:$gid" "$tmp" && mv -f "$tmp" "$dest"
    note "wrote $4"
}

# The numeric id of a user or group as the target system (DESTDIR's /etc) knows it.
id_of() {
    case $2 in ''|*[!0-9]*) ;; *) echo "$2"; return 0 ;; esac
    n=$(awk -F: -v name="$2" '$1 == name { print $3; exit }' "$D/etc/$1" 2>/dev/null || true)
    [ -n "$n" ] || die "the $1 entry '$2' does not exist in $D/etc/$1"
    echo "$n"
}

# put_kept OWNER:GROUP SRC DEST — a file the installer may edit (or the fleet replace): installed
# once; later only if it is still the old shipped default (kept in /opt/klick/share/defaults);
# otherwise the new default goes beside it as DEST.new.
put_kept() {
    owner=$1 src=$2 name=$3 dest=$D$3 pristine=/opt/klick/share/defaults/${3##*/}
    if [ ! -e "$dest" ] || { [ -f "$D$pristine" ] && cmp -s "$dest" "$D$pristine"; }; then
        put 640 "$owner" "$src" "$name"
    elif ! cmp -s "$src" "$dest"; then
        put 640 "$owner" "$src" "$name.new"
        say "  kept your edited $name; the new default is $name.new"
    fi
    put 644 0:0 "$src" "$pristine"
}

say "Installing the Klick appliance${D:+ into $D}."

# 1. Debian packages the appliance runs on (never into an image: that is the image builder's job).
say "  kiosk packages: $KIOSK_PACKAGES"
say "  run-time packages: $RUNTIME_PACKAGES"
if [ -n "$D" ]; then
    say "  not installed into an image: the image needs them (apt-get install $APT_PACKAGES)"
elif [ "$SKIP_APT" = 1 ]; then
    say "  SKIP_APT=1: left out installing them"
elif ! command -v apt-get >/dev/null 2>&1; then
    say "  apt-get not found: install them yourself"
else
    missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "  installing Debian packages:$missing"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        note "installed$missing"
    fi
fi

# 2. The klick user and its groups, then its folders.
put 644 0:0 "$SRC/config/appliance/sysusers.conf" /etc/sysusers.d/klick.conf
if command -v systemd-sysusers >/dev/null 2>&1; then
    before=$(cat "$D/etc/passwd" "$D/etc/group" 2>/dev/null | cksum)
    systemd-sysusers --root="${D:-/}" "$D/etc/sysusers.d/klick.conf"
    [ "$before" = "$(cat "$D/etc/passwd" "$D/etc/group" | cksum)" ] || note "created the klick user and groups"
elif [ -z "$D" ]; then
    if ! id klick >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/klick --shell /usr/sbin/nologin --comment "Klick appliance" klick
        note "created the klick user"
    fi
    for g in dialout plugdev input video render audio; do
        getent group "$g" >/dev/null || groupadd --system "$g"
        id -nG klick | tr ' ' '\n' | grep -qx "$g" || { usermod -aG "$g" klick; note "added klick to $g"; }
    done
else
    die "systemd-sysusers is needed to create the klick user inside DESTDIR"
fi
put 644 0:0 "$SRC/config/appliance/tmpfiles.conf" /etc/tmpfiles.d/klick.conf
for dir in /var/lib/klick:750:klick:klick /etc/klick:750:0:klick; do
    path=${dir%%:*} rest=${dir#*:}
    mode=${rest%%:*} rest=${rest#*:}
    uid=$(id_of passwd "${rest%%:*}") gid=$(id_of group "${rest#*:}")
    if [ ! -d "$D$path" ] || [ "$(stat -c '%a %u %g' "$D$path")" != "$mode $uid $gid" ]; then
        mkdir -p "$D$path" && chmod "$mode" "$D$path" && chown "$uid:$gid" "$D$path"
        note "made $path"
    fi
done

# 3. Klick itself, in its own venv. Reinstalled only when the checkout changed.
if [ "$SKIP_VENV" = 1 ]; then
    say "  SKIP_VENV=1: left out the venv in $VENV"
else
    # Every package pyproject.toml installs, and the settings: a change in any of them reinstalls.
    stamp=$(cd "$SRC" && find pyproject.toml klick cards launcher firmware_bridge fleet config -type f \
        ! -name '*.pyc' ! -path '*/__pycache__/*' -print | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
    stamp="$stamp $PIP_ARGS"
    if [ ! -x "$D$VENV/bin/klick" ] || [ "$(cat "$D$VENV/.klick-source" 2>/dev/null)" != "$stamp" ]; then
        say "  building the venv in $VENV (this takes a few minutes the first time)"
        [ -x "$D$VENV/bin/python" ] || "$VENV_PYTHON" -m venv "$D$VENV"
        # shellcheck disable=SC2086
        "$D$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS "$SRC"
        if [ -n "$D" ]; then
            # Scripts are written with the path pip saw; the appliance runs them from /opt/klick.
            grep -rlI --null "$D$VENV" "$D$VENV/bin" | xargs -0r sed -i "s|$D$VENV|$VENV|g"
        fi
        find "$D$VENV" -name '__pycache__' -prune -exec rm -rf {} +
        printf '%s\n' "$stamp" > "$D$VENV/.klick-source"
        note "installed Klick into $VENV"
    fi
fi

# 4. What an installer reads and flashes, and the shipped defaults.
put 644 0:0 "$SRC/README.md" /opt/klick/share/README.md
put 644 0:0 "$SRC/config/klick.yaml" /opt/klick/share/klick.yaml.example
for f in main.py klick_proto.py mfrc522.py README.md; do
    put 644 0:0 "$SRC/firmware_bridge/firmware/$f" "/opt/klick/share/firmware/$f"
done
put 644 0:0 "$SRC/firmware_bridge/PROTOCOL.md" /opt/klick/share/firmware/PROTOCOL.md

# 5. Settings, and the questionnaire in the data folder, where `klick fleet` (the klick user) may
#    swap in a pushed one. Before, it was /etc/klick/questionnaire.yaml, which the klick user
#    cannot write: an installer's edits there move with it, and the old file goes once nothing
#    names it and nothing in it would be lost.
put_kept 0:klick "$SRC/config/appliance/klick.yaml" /etc/klick/klick.yaml
old=$D/etc/klick/questionnaire.yaml new=$D/var/lib/klick/questionnaire.yaml
if [ -f "$old" ]; then
    if [ ! -e "$new" ] && ! cmp -s "$old" "$D/opt/klick/share/defaults/questionnaire.yaml"; then
        put 640 klick:klick "$old" /var/lib/klick/questionnaire.yaml
        say "  your edited questionnaire moved to /var/lib/klick/questionnaire.yaml"
    fi
    if ! grep -qs /etc/klick/questionnaire.yaml "$D/etc/klick/klick.yaml" \
        && { cmp -s "$old" "$D/opt/klick/share/defaults/questionnaire.yaml" || cmp -s "$old" "$new"; }; then
        rm -f "$old" "$old.new"
        note "removed /etc/klick/questionnaire.yaml (the questionnaire is /var/lib/klick/questionnaire.yaml)"
    fi
fi
put_kept klick:klick "$SRC/config/questionnaire.yaml" /var/lib/klick/questionnaire.yaml

# 6. System integration.
for unit in klick-bridge.service klick-launcher.service klick-fleet.service klick-retry@.timer; do
    put 644 0:0 "$SRC/config/systemd/$unit" "/etc/systemd/system/$unit"
done
put 644 0:0 "$SRC/config/udev/99-klick.rules" /etc/udev/rules.d/99-klick.rules
put 644 0:0 "$SRC/config/appliance/pam-klick-kiosk" /etc/pam.d/klick-kiosk
put 644 0:0 "$SRC/config/appliance/modprobe-klick-nfc.conf" /etc/modprobe.d/klick-nfc.conf
# Chromium's managed policy, for every profile on the machine: no site may use the camera or
# microphone, send notifications, ask for the location, download, save passwords, translate or
# run in the background. The launcher grants the camera and microphone to exactly the call
# server of the card in the slot, in the call profile only, over its own DevTools pipe, which
# this policy leaves working (so it must never set DeveloperToolsAvailability: that closes the
# pipe too). Nothing in it depends on klick.yaml: editing calls.allowed_servers needs no
# reinstall.
put 644 0:0 "$SRC/config/appliance/chromium-policy.json" /etc/chromium/policies/managed/klick.json

# 7. Enable. A running systemd is told directly; an image (or a machine without systemd running)
#    gets the same symlinks offline with `systemctl --root`.
UNITS="klick-bridge.service klick-launcher.service klick-fleet.service klick-retry@klick-bridge.timer klick-retry@klick-launcher.timer"
live=0
[ -z "$D" ] && [ -d /run/systemd/system ] && live=1
if command -v systemctl >/dev/null 2>&1; then
    before=$(find "$D/etc/systemd/system" -type l -name 'klick*' 2>/dev/null | LC_ALL=C sort | cksum)
    if [ "$live" = 1 ]; then
        systemctl daemon-reload
        systemctl enable --quiet $UNITS
    else
        systemctl --root="${D:-/}" enable --quiet $UNITS
    fi
    [ "$before" = "$(find "$D/etc/systemd/system" -type l -name 'klick*' | LC_ALL=C sort | cksum)" ] \
        || note "enabled $UNITS"
else
    say "  systemctl not found: enable $UNITS yourself"
fi

if [ "$live" = 1 ]; then
    systemd-tmpfiles --create /etc/tmpfiles.d/klick.conf
    if command -v udevadm >/dev/null 2>&1; then
        udevadm control --reload
        udevadm trigger --action=change --subsystem-match=tty --subsystem-match=usb --subsystem-match=input
    fi
    if [ "$changed" -gt 0 ]; then
        systemctl restart klick-bridge.service
        say "  restarted klick-bridge; the kiosk (klick-launcher) starts at the next boot, or now with:"
        say "    sudo systemctl start klick-launcher"
    fi
elif [ -z "$D" ]; then
    say "  systemd is not running here: nothing was started"
fi

if [ "$changed" -eq 0 ]; then
    say "Nothing changed: the appliance was already installed${D:+ in $D}."
else
    say "Done: $changed change(s)${D:+ in $D}. Settings: /etc/klick/klick.yaml; logs: journalctl -u klick-bridge -u klick-launcher"
fi
