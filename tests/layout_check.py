"""What is wrong with a Kivy layout on show, from the widgets themselves (not from pixels).

One check for every window Klick draws (the launcher's screens, the carer's window): every text
lies inside the window and inside its own box (its rendered texture no larger than the widget:
Kivy does not clip a label, so a larger text spills over its neighbours or off the glass), and
no two texts overlap. A text is drawn centred in its widget, so its place on the glass is the
widget's centre give or take half its texture. Texts inside a scrolling view count where the view
shows them; scrolled-away ones are left out. Hidden widgets (opacity 0, or inside one) are left out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["layout_problems", "texts_on_show"]

Rect = tuple[float, float, float, float]


def texts_on_show(window: Any, roots: list | None = None) -> tuple[list[tuple[str, Rect, Any]], list[str]]:
    """(name, rect on the glass, widget) of every text on show, and the problems found walking."""
    from kivy.uix.label import Label
    from kivy.uix.modalview import ModalView
    from kivy.uix.scrollview import ScrollView

    problems: list[str] = []
    texts: list[tuple[str, Rect, Any]] = []

    def rect(widget: Any, w: float, h: float) -> Rect:
        x, y = widget.to_window(widget.x + widget.width / 2 - w / 2, widget.y + widget.height / 2 - h / 2)
        return (x, y, x + w, y + h)

    def visible_in(view: Any, r: Rect) -> bool:
        vx, vy = view.to_window(*view.pos)
        return r[0] >= vx - 1 and r[1] >= vy - 1 and r[2] <= vx + view.width + 1 and r[3] <= vy + view.height + 1

    def walk(widget: Any, views: list) -> None:
        for child in widget.children:
            if getattr(child, "opacity", 1) == 0:
                continue
            inner = [*views, child] if isinstance(child, ScrollView) else views
            if isinstance(child, Label) and child.text.strip() and child.parent is not None:
                tw, th = child.texture_size
                name = f"{type(child).__name__} {child.text[:30]!r}"
                if tw > child.width + 2 or th > child.height + 2:
                    problems.append(f"{name}: text {tw:.0f}x{th:.0f} larger than its box {child.width:.0f}x{child.height:.0f}")
                r = rect(child, tw, th)
                if not views or all(visible_in(v, r) for v in views):
                    texts.append((name, r, child))
            walk(child, inner)

    if roots is None:
        # A dialog covers the page: only what is on top is seen.
        children = window.children
        roots = children[:1] if children and isinstance(children[0], ModalView) else list(children)
    for root in roots:
        if getattr(root, "opacity", 1) != 0:
            walk(root, [])
    return texts, problems


def layout_problems(window: Any, roots: list | None = None, size: tuple[float, float] | None = None) -> list[str]:
    """Texts outside the window or their box, and texts that overlap; empty when all is well.

    ``roots``: the widgets to walk (default: what the window shows). ``size``: the window's size
    (default: ``window.size``).
    """
    width, height = size if size is not None else window.size
    texts, problems = texts_on_show(window, roots)
    for name, r, _widget in texts:
        if r[0] < -1 or r[1] < -1 or r[2] > width + 1 or r[3] > height + 1:
            problems.append(f"{name}: outside the window at {tuple(round(v) for v in r)}")
    for i, (a, ra, _) in enumerate(texts):
        for b, rb, _ in texts[i + 1 :]:
            if min(ra[2], rb[2]) - max(ra[0], rb[0]) > 1 and min(ra[3], rb[3]) - max(ra[1], rb[1]) > 1:
                problems.append(f"{a} overlaps {b}")
    return problems
