"""One way to reach the broker: paho-mqtt 2.x, MQTT 5, TLS, a username and password.

MQTT 5 because its PUBACK says whether the broker took a message: a publish the ACL refuses is
acknowledged with "not authorized", so the tablet never counts refused rows as sent (MQTT 3.1.1
acknowledges them all the same, silently dropped).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt.client import CallbackAPIVersion, Client
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = [
    "Access",
    "FleetSetupError",
    "access_from_config",
    "make_client",
    "session_id",
    "connect_properties",
    "read_password",
    "tls_context",
    "why_not_connected",
    "refusal_words",
    "subscription_refused",
]


class FleetSetupError(Exception):
    """The fleet cannot start as set up; one sentence for the installer (exit 2)."""


@dataclass(frozen=True)
class Access:
    host: str
    port: int
    ca_file: Path
    username: str
    password: str


def read_password(path: Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is not the password
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetSetupError(
            f"The broker password file {path} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
            "`klick fleet enrol` prints what goes in it."
        ) from None
    password = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise FleetSetupError(f"The broker password file {path} is empty; `klick fleet enrol` prints what goes in it.")
    return password


def access_from_config(fleet, username: str) -> Access:
    """Broker access from a ``fleet:`` settings section (klick.config.FleetConfig)."""
    if not fleet.host:
        raise FleetSetupError("The fleet is off: klick.yaml has no fleet: section with a host.")
    problem = host_problem(fleet.host)
    if problem:
        raise FleetSetupError(f"fleet.host {problem}.")
    if Path(fleet.ca_file).is_dir():
        raise FleetSetupError(
            f"fleet.ca_file {fleet.ca_file} is a folder; name the broker's CA certificate file in it (see README, the fleet)."
        )
    if not Path(fleet.ca_file).is_file():
        raise FleetSetupError(
            f"fleet.ca_file {fleet.ca_file} does not exist; copy the broker's CA certificate there (see README, the fleet)."
        )
    tls_context(Path(fleet.ca_file))  # a file that is no certificate is said now, not as a failed connection later
    return Access(fleet.host, fleet.port, Path(fleet.ca_file), username, read_password(fleet.password_file))


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a broker's name or address (an installer may paste a URL), or None."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "://" in host or "/" in host or ":" in host or any(c.isspace() for c in host):
        return (
            f"{host!r} must be the broker's name alone (like mqtt.kommun.se), "
            "without mqtt:// or a port; the port goes in fleet.port"
        )
    return None


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate checked against ``ca_file`` and the host name."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise FleetSetupError(
            f"fleet.ca_file {ca_file} is not a CA certificate ({getattr(exc, 'reason', None) or exc}); "
            "copy the broker's CA certificate there, the PEM file that starts with -----BEGIN CERTIFICATE-----."
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def make_client(access: Access, client_id: str, *, manual_ack: bool = False) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack)
    client.username_pw_set(access.username, access.password)
    client.tls_set_context(tls_context(access.ca_file))
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def session_id(access: Access, name: str) -> str:
    """The fixed client id of a persistent session (a tablet's, the collector's): ``name`` and a
    keyed hash of it under the user's own password.

    Mosquitto lets any user connect under any client id, and a new connection under an id in use
    closes the old one; with a clean start it also throws the session and its queue away. With an
    id anyone can read in this file ("klick-collector"), any tablet could empty the collector's
    queue or keep another tablet off the broker. Only who holds the password can make this one,
    and it stays the same from run to run, so the broker keeps the session while we are away.
    """
    key = f"{access.username}\n{access.password}".encode()
    return f"{name}-{hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:16]}"


def connect_properties(session_expiry_s: int) -> Properties:
    """A persistent session: the broker keeps our subscriptions and queued messages this long."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return props


def refusal_words(rc: object) -> str:
    """The broker's refusal of a connection, with what to check."""
    name = getattr(rc, "getName", lambda: str(rc))()
    if name in ("Not authorized", "Bad user name or password"):
        return (
            f"the broker refused the name and password ({name}): check that fleet.password_file holds the password "
            "`klick fleet enrol` printed, and that its line is in the broker's password file (and the broker was reloaded)"
        )
    return f"the broker refused the connection ({name})"


def subscription_refused(username: str, topics: list[str], reason_codes: list[object]) -> str | None:
    """None when the broker granted every subscription; else which topic this user may not read.

    A broker's ACL refuses a subscription quietly (a reason code, no error): without this, a
    status read as the wrong user says "no tablet has reported yet", and a push goes out without
    knowing what the tablets have in force.
    """
    for topic, rc in zip(topics, reason_codes):
        if getattr(rc, "is_failure", False):
            name = rc.getName() if hasattr(rc, "getName") else str(rc)
            return (
                f"the broker user {username!r} may not read {topic} ({name}); use the office user "
                "(fleet.username in the office's klick.yaml, or --username office)"
            )
    return None


#: OpenSSL's codes for the certificate problems an installer can fix.
_EXPIRED, _NOT_YET_VALID, _NAME_MISMATCH = 10, 9, (62, 64)


def why_not_connected(access: Access, timeout: float = 5.0) -> str:
    """Why no connection to the broker can be made, in plain words, found by trying each step
    (name, port, TLS) as paho would. paho itself only retries, silently."""
    where = f"{access.host}:{access.port}"
    try:
        socket.getaddrinfo(access.host, access.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return (
            f"the broker's name {access.host} cannot be found ({getattr(exc, 'strerror', None) or exc}); "
            "check fleet.host and this computer's network"
        )
    try:
        raw = socket.create_connection((access.host, access.port), timeout=timeout)
    except TimeoutError:
        return f"nothing answers at {where} within {timeout:.0f} s; check that the broker runs and that no firewall stops port {access.port}"
    except OSError as exc:
        return f"nothing answers at {where} ({exc.strerror or exc}); check that the broker runs and that fleet.port is its TLS port (8883)"
    try:
        context = tls_context(access.ca_file)
    except FleetSetupError as exc:
        raw.close()
        return str(exc).rstrip(".")
    try:
        with context.wrap_socket(raw, server_hostname=access.host):  # the handshake, within the socket's timeout
            pass
    except ssl.SSLCertVerificationError as exc:
        return _certificate_words(exc, access)
    except (ssl.SSLError, OSError) as exc:
        return (
            f"the TLS handshake with {where} failed ({getattr(exc, 'reason', None) or exc}); "
            "check that fleet.port is the broker's TLS port (8883)"
        )
    finally:
        raw.close()
    return f"the broker at {where} takes TLS connections, but the MQTT connection did not come up; see the broker's log"


def _certificate_words(exc: ssl.SSLCertVerificationError, access: Access) -> str:
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    if exc.verify_code in (_EXPIRED, _NOT_YET_VALID):
        state = "has expired" if exc.verify_code == _EXPIRED else "is not valid yet"
        return (
            f"the broker's certificate {state} by this computer's clock, which says {now}: if that is wrong, set the clock "
            "(timedatectl); if it is right, the broker needs a new certificate"
        )
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"the broker's certificate is not for the name {access.host}; fleet.host must be the name the certificate "
            "was made for (its subjectAltName)"
        )
    return (
        f"the broker's certificate is not signed by the CA in fleet.ca_file {access.ca_file} ({exc.verify_message}); "
        "copy the broker's own CA certificate there"
    )
