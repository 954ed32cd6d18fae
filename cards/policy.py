"""What a card set may do on this tablet, beyond being a well-formed card file.

A card file can be perfectly valid and still be a way in: a ``command`` card runs any program
(``sh -c …``) as the launcher's user, and a video call to a server of the sender's choosing gets
the camera and microphone. So a card set that arrives from elsewhere (a bundle, a push from the
fleet) and a card the carer saves are held to the installer's own list of call servers
(``calls.allowed_servers`` in klick.yaml), and command cards only come in when the installer says
so. One function, so every way in applies the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from cards.model import Card, Command, VideoCall
from cards.registry import Registry
from klick.calls import CallServerError, call_origin, server_allowed
from klick.problems import Problem

__all__ = ["policy_problems"]


def policy_problems(
    registry: Registry | Iterable[Card], allowed_servers: Iterable[str], allow_commands: bool, *, file: str | None = None
) -> list[Problem]:
    """Every card the tablet must not take: command cards (unless ``allow_commands``) and calls to
    a server not in ``allowed_servers``; each names its card (label and uid) and its line.

    ``file`` is how the problems name the card file (default: the registry's path).
    """
    cards = registry.cards if isinstance(registry, Registry) else tuple(registry)
    where = file or (str(registry.path) if isinstance(registry, Registry) and registry.path else "cards.yaml")
    allowed = tuple(allowed_servers)
    problems: list[Problem] = []
    for card in cards:
        action = card.action
        if isinstance(action, Command) and not allow_commands:
            problems.append(
                Problem(
                    where,
                    card.lines.get("action.argv", card.line),
                    f'card "{card.label}" ({card.uid}) starts the program {action.argv[0]} on the tablet; '
                    "command cards are taken only when the installer allows them",
                )
            )
        elif isinstance(action, VideoCall) and action.server and not server_allowed(action.server, allowed):
            problems.append(
                Problem(
                    where,
                    card.lines.get("action.server", card.line),
                    f'card "{card.label}" ({card.uid}) calls {_origin(action.server)}, which is not one of the call '
                    "servers in calls.allowed_servers; only those get the camera and microphone",
                )
            )
    return problems


def _origin(server: str) -> str:
    try:
        return call_origin(server)
    except CallServerError:
        return server
