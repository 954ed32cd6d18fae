"""Hooks the command line can hand the launcher app; Kivy stays inside launcher/."""

from __future__ import annotations

from collections.abc import Callable


def home_screenshot(path: str) -> Callable:
    """A probe that saves the home screen as a PNG once it is drawn, then closes the app.

    With a card file that cannot be read, the calm screen that stands in for home is the one.
    """

    def probe(app) -> None:
        from kivy.clock import Clock

        from launcher.session import CardsUnreadable

        def shoot(_dt: float) -> None:
            app.screenshot(path)
            app.quit()

        def shown(name: str, screen: object = None, *_: object) -> None:
            if name == "home" or isinstance(screen, CardsUnreadable):
                app.shown_listeners.remove(shown)
                Clock.schedule_once(shoot, 0.3)  # a few frames, so the layout has settled

        app.shown_listeners.append(shown)

    return probe
