"""Words and pictures drawn once and kept: what the glass needs again is reused, not redrawn.

A card's face is words in a large font and a picture. Rasterising the words and uploading them
takes a few milliseconds; updating a texture the last frame still uses makes a software GL wait
for that frame. So every text is rendered once into a fresh texture and kept here, keyed by
everything that changes its pixels (the words, size, weight, colour, alignment, width), and a
card put in again shows the very same textures. Pictures are made small on a worker thread
(:func:`cards.carer.pictures.make_thumb`: a camera's photo decodes at a fraction of its size)
and only their upload happens on the screen's thread.

Both stores are bounded in bytes (least recently used goes first): a tablet with 200 cards keeps
the faces in use, not all of them. Kivy's thread only.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.core.text import Label as CoreLabel
from kivy.graphics.texture import Texture

__all__ = ["TextTextures", "PictureTextures", "text_textures", "picture_textures", "TEXT_BUDGET", "PICTURE_BUDGET"]

log = logging.getLogger("klick.launcher")

#: Bytes of text textures kept: about thirty cards' faces at 1280x800 with their status lines,
#: and every other screen's words.
TEXT_BUDGET = 10 * 1024 * 1024
#: Bytes of picture textures kept.
PICTURE_BUDGET = 16 * 1024 * 1024


class _Budget:
    """An LRU store of textures bounded by their bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        found = self.items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self.items.move_to_end(key)
        return found[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        old = self.items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self.items[key] = (value, size)
        self.used += size
        while self.used > self.budget and len(self.items) > 1:
            _, (_, freed) = self.items.popitem(last=False)
            self.used -= freed

    def __contains__(self, key: Any) -> bool:
        return key in self.items

    def clear(self) -> None:
        self.items.clear()
        self.used = 0


class TextTextures:
    """Rendered texts, each a texture of its own that is never drawn over."""

    def __init__(self, budget: int = TEXT_BUDGET) -> None:
        self.store = _Budget(budget)

    def texture(self, options: dict[str, Any]) -> Any:
        """The texture of a text with these CoreLabel options (``text``, ``font_size``, ...)."""
        key = _key(options)
        found = self.store.get(key)
        if found is not None:
            return found
        label = CoreLabel(**options)
        label.refresh()
        texture = label.texture
        if texture is None:
            return None
        texture.bind()  # rasterise and upload now, not in the middle of the next frame
        self.store.put(key, texture, texture.width * texture.height * 4)
        return texture

    def has(self, options: dict[str, Any]) -> bool:
        return _key(options) in self.store

    def clear(self) -> None:
        self.store.clear()


def _key(options: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


class PictureTextures:
    """Pictures made to fit a box, decoded beside the screen, uploaded on Kivy's thread.

    :meth:`texture` returns the texture at once when it is known; otherwise it asks the worker
    and returns None, and ``on_ready(path, px)`` is called on Kivy's thread once it is there.
    """

    def __init__(self, budget: int = PICTURE_BUDGET, schedule: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.store = _Budget(budget)
        self._schedule = schedule or _on_kivy_thread
        self._wanted: list[tuple[Path, int]] = []
        self._pending: set[tuple[Path, int]] = set()
        self._failed: set[tuple[Path, int]] = set()
        #: Counts forget()s: a decode begun before the last one is of a file that may have changed.
        self._generation = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._listeners: list[weakref.WeakMethod[Callable[[Path, int], None]]] = []

    def listen(self, method: Callable[[Path, int], None]) -> None:
        """Call ``method(path, px)`` (a bound method, held weakly: a screen built anew lets its
        old self go) when a picture asked for is ready."""
        self._listeners.append(weakref.WeakMethod(method))

    def texture(self, path: Path, px: int) -> Any:
        key = (Path(path), int(px))
        found = self.store.get(key)
        if found is not None or key in self._failed:
            return found
        self.request(key[0], key[1])
        return None

    def failed(self, path: Path, px: int) -> bool:
        """The picture was tried at this size and cannot be shown (unreadable, too big)."""
        return (Path(path), int(px)) in self._failed

    def request(self, path: Path, px: int) -> None:
        key = (Path(path), int(px))
        if key in self.store or key in self._failed:
            return
        with self._wake:
            if key in self._pending:
                return
            self._pending.add(key)
            self._wanted.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="klick-pictures", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        from cards.carer.pictures import make_thumb

        while True:
            with self._wake:
                while not self._wanted:
                    self._wake.wait()
                key = self._wanted.pop()  # the newest wish first: that card is in the slot
                generation = self._generation
            try:
                thumb = make_thumb(key[0], None, key[1])
            except Exception:  # make_thumb should not raise; if it did, the card shows no picture
                log.exception("the picture %s could not be read", key[0])
                thumb = None
            self._schedule(functools.partial(self._upload, key, thumb, generation))

    def _upload(self, key: tuple[Path, int], thumb: Any, generation: int = 0) -> None:
        with self._wake:
            if generation != self._generation:
                return  # read before the card set changed: forget() has asked for it again
            self._pending.discard(key)
        if thumb is None or thumb.problem is not None or not thumb.rgba:
            self._failed.add(key)
            if thumb is not None and thumb.problem:
                log.warning("The picture %s cannot be shown (%s).", key[0], thumb.problem)
        else:
            texture = Texture.create(size=thumb.size, colorfmt="rgba")
            texture.blit_buffer(thumb.rgba, colorfmt="rgba", bufferfmt="ubyte")
            texture.flip_vertical()  # the bytes are top row first
            self.store.put(key, texture, thumb.size[0] * thumb.size[1] * 4)
        alive = []
        for ref in self._listeners:
            listener = ref()
            if listener is None:
                continue
            alive.append(ref)
            try:
                listener(*key)
            except Exception:
                log.exception("a picture listener failed")
        self._listeners = alive

    def forget(self) -> None:
        """The card set changed: pictures are made again when asked (a file may have changed).
        A decode under way is of the old file: its result is dropped and the picture made again."""
        with self._wake:
            self._generation += 1
            under_way = self._pending.difference(self._wanted)
            self._wanted[:0] = sorted(under_way, key=str)  # after the newer wishes (taken from the end)
            if under_way:
                self._wake.notify()
        self.store.clear()
        self._failed.clear()


def _on_kivy_thread(call: Callable[[], None]) -> None:
    from kivy.clock import Clock

    Clock.schedule_once(lambda _dt: call(), -1)


text_textures = TextTextures()
picture_textures = PictureTextures()
