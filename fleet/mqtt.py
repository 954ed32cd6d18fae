"""One way to reach the broker: paho-mqtt 2.x, MQTT 5, TLS, a username and password.

MQTT 5 because its PUBACK says whether the broker took a message: a publish the ACL refuses is
acknowledged with "not authorized", so the tablet never counts refused rows as sent (MQTT 3.1.1
acknowledges them all the same, silently dropped).
"""

from __future__ import annotations

import hashlib
import hmac
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
        text = Path(path).read_text(encoding="utf-8")
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
    if not Path(fleet.ca_file).is_file():
        raise FleetSetupError(
            f"fleet.ca_file {fleet.ca_file} does not exist; copy the broker's CA certificate there (see README, the fleet)."
        )
    return Access(fleet.host, fleet.port, Path(fleet.ca_file), username, read_password(fleet.password_file))


def make_client(access: Access, client_id: str, *, manual_ack: bool = False) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack)
    client.username_pw_set(access.username, access.password)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(access.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    client.tls_set_context(context)
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
