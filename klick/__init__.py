"""Klick: a card-driven launcher. This package is the shared core and the `klick` command."""

__version__ = "0.1.0"
