"""``klick report``: one self-contained HTML page a pilot tester can read, print or mail.

Everything is in the one file (plots are PNGs embedded as base64), so it opens offline on any
computer. Each plot has the same numbers beside it as a table: for readers who use a screen
reader, and for anyone who wants the exact figure. The numbers are computed inside SQLite
(``GROUP BY``), so a merged file with millions of events is summarised without loading it.
``klick export merge`` refuses a file with a time it cannot read, but a report may be asked of
any file: a row whose time is not one Klick writes is left out and counted, never a crash.
matplotlib is imported only here, inside the function, with the Agg backend: no display needed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import re
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klick.atomic import write_atomic
from klick.export import ExportError, open_export, time_sql
from klick.usage import from_iso

__all__ = ["write_report", "collect", "Figures"]

DURATION_BINS = [
    (0, 1, "under 1 min"),
    (1, 5, "1–5 min"),
    (5, 15, "5–15 min"),
    (15, 30, "15–30 min"),
    (30, 60, "30–60 min"),
    (60, None, "over 1 hour"),
]
STATE_NAMES = {
    "answered": "answered",
    "dismissed": "declined",
    "expired": "expired unanswered",
    "snoozed": "snoozed",
    "shown": "shown, no answer yet",
    "queued": "not yet asked",
}


@dataclass
class Figures:
    meta: dict[str, str]
    totals: dict[str, int]
    per_day: list[tuple[str, int, int]] = field(default_factory=list)  # day, uses, devices
    per_type: list[tuple[str, int, float]] = field(default_factory=list)  # type, uses, median minutes
    durations: list[tuple[str, int]] = field(default_factory=list)  # bin, sessions
    answers: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # question → (answer, n)
    asked: dict[str, dict[str, int]] = field(default_factory=dict)  # question → state → n
    outages: list[tuple[str, int, float]] = field(default_factory=list)  # day, outages, minutes
    first_day: str | None = None
    last_day: str | None = None
    #: Rows left out because their time is not one Klick writes (a file changed after export).
    unreadable: int = 0


#: The most bars one plot draws (questions, answers to one question, kinds of card); the tables
#: beside the plots list everything. A real pilot has a handful of each.
MAX_BARS = 20
#: Words on a plot are cut to this many characters (the tables have them whole).
MAX_PLOT_TEXT = 40
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


AT, STARTED, CREATED = time_sql("at"), time_sql("started_at"), time_sql("created_at")
ENDED = f"(ended_at IS NULL OR {time_sql('ended_at')})"
DURATION = "typeof(duration_s) IN ('real', 'integer')"


def collect(conn: Any, meta: dict[str, str]) -> Figures:
    """The report's numbers, each from one SQL query."""
    q = lambda sql, *a: conn.execute(sql, a).fetchall()  # noqa: E731
    session_ok = f"{STARTED} AND {ENDED}"
    totals = {
        "events": q(f"SELECT count(*) FROM events WHERE {AT}")[0][0],
        "sessions": q(f"SELECT count(*) FROM sessions WHERE {session_ok}")[0][0],
        "questions": q(f"SELECT count(*) FROM answers WHERE {CREATED}")[0][0],
        "answered": q(f"SELECT count(*) FROM answers WHERE state='answered' AND {CREATED}")[0][0],
        "devices": q(
            "SELECT count(*) FROM (SELECT device FROM events UNION SELECT device FROM sessions UNION SELECT device FROM answers)"
        )[0][0],
    }
    f = Figures(meta, totals)
    f.unreadable = (
        q(f"SELECT count(*) FROM events WHERE NOT {AT}")[0][0]
        + q(f"SELECT count(*) FROM sessions WHERE NOT ({session_ok})")[0][0]
        + q(f"SELECT count(*) FROM answers WHERE NOT {CREATED}")[0][0]
    )
    span = q(
        f"SELECT min(d), max(d) FROM (SELECT min(substr(at,1,10)) d FROM events WHERE {AT}"
        f" UNION ALL SELECT max(substr(at,1,10)) FROM events WHERE {AT}"
        f" UNION ALL SELECT min(substr(started_at,1,10)) FROM sessions WHERE {session_ok}"
        f" UNION ALL SELECT max(substr(started_at,1,10)) FROM sessions WHERE {session_ok})"
    )
    f.first_day, f.last_day = span[0]
    f.per_day = q(
        f"SELECT substr(started_at,1,10) d, count(*), count(DISTINCT device) FROM sessions WHERE {session_ok} GROUP BY d ORDER BY d"
    )
    medians = _medians(conn, session_ok)
    for action_type, n in q(
        f"SELECT action_type, count(*) FROM sessions WHERE {session_ok} GROUP BY 1 ORDER BY 2 DESC, coalesce(action_type, '')"
    ):
        f.per_type.append(("not known" if action_type is None else str(action_type), n, medians.get(action_type, 0.0)))
    cases = " ".join(f"WHEN duration_s < {hi * 60} THEN {i}" for i, (_, hi, _) in enumerate(DURATION_BINS) if hi is not None)
    got = dict(
        q(
            f"SELECT CASE {cases} ELSE {len(DURATION_BINS) - 1} END b, count(*) FROM sessions"
            f" WHERE {DURATION} AND {session_ok} GROUP BY b"
        )
    )
    f.durations = [(label, got.get(i, 0)) for i, (_, _, label) in enumerate(DURATION_BINS)]
    for question, value, n in q(
        "SELECT question_id, CASE WHEN value IS NOT NULL THEN value ELSE 'written answer' END, count(*)"
        f" FROM answers WHERE state='answered' AND {CREATED} GROUP BY 1, 2 ORDER BY 1, 2"
    ):
        f.answers.setdefault(str(question), []).append((str(value), n))
    for question, state, n in q(f"SELECT question_id, state, count(*) FROM answers WHERE {CREATED} GROUP BY 1, 2 ORDER BY 1, 2"):
        f.asked.setdefault(str(question), {})[str(state)] = n
    f.outages = _outages(conn)
    return f


def _medians(conn: Any, session_ok: str) -> dict[Any, float]:
    """The median session (the lower middle one), in minutes, per kind of card: one query, so a
    file with thousands of kinds is not read once per kind."""
    rows = conn.execute(
        "SELECT action_type, duration_s FROM (SELECT action_type, duration_s,"
        " row_number() OVER (PARTITION BY action_type ORDER BY duration_s) AS i,"
        " count(*) OVER (PARTITION BY action_type) AS n"
        f" FROM sessions WHERE {DURATION} AND {session_ok}) WHERE i = (n - 1) / 2 + 1"
    )
    return {action_type: float(duration) / 60.0 for action_type, duration in rows}


def _shown(text: str) -> str:
    """Text as a page or a plot can show it: a control character (a NUL, a tab) becomes �."""
    return _CONTROL.sub("\ufffd", text)


def _short(text: str) -> str:
    text = _shown(text)
    return text if len(text) <= MAX_PLOT_TEXT else text[: MAX_PLOT_TEXT - 1] + "…"


def _top(pairs: list[tuple[str, int]], other: str) -> list[tuple[str, int]]:
    """At most MAX_BARS bars: the largest, and the rest summed as one bar named ``other``."""
    if len(pairs) <= MAX_BARS:
        return pairs
    ranked = sorted(pairs, key=lambda p: -p[1])
    kept = ranked[: MAX_BARS - 1]
    return kept + [(f"{other} ({len(ranked) - len(kept)})", sum(n for _, n in ranked[len(kept) :]))]


def _outages(conn: Any) -> list[tuple[str, int, float]]:
    """Outages per day: from a reader reported lost until it is connected again."""
    per_day: dict[str, list[float]] = {}
    down: dict[str, float] = {}
    for device, at, state in conn.execute(
        f"SELECT device, at, outcome FROM events WHERE kind='reader_status' AND {AT} ORDER BY device, at"
    ):
        t = from_iso(at)
        if state == "lost" and device not in down:
            down[device] = t
        elif state == "connected" and device in down:
            start = down.pop(device)
            day = _dt.datetime.fromtimestamp(start, _dt.UTC).date().isoformat()
            entry = per_day.setdefault(day, [0, 0.0])
            entry[0] += 1
            entry[1] += (t - start) / 60.0
    for start in down.values():  # still down at the end of the data
        day = _dt.datetime.fromtimestamp(start, _dt.UTC).date().isoformat()
        per_day.setdefault(day, [0, 0.0])[0] += 1
    return [(day, int(v[0]), round(v[1], 1)) for day, v in sorted(per_day.items())]


# --- plotting -----------------------------------------------------------------------------------

BLUE, ORANGE, GREY = "#1F4E9C", "#C8581A", "#555555"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(f: Figures) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num
    from matplotlib.ticker import MaxNLocator

    whole = lambda axis: axis.set_major_locator(MaxNLocator(integer=True))  # noqa: E731 counts have no fractions
    plt.rcParams.update(
        {
            "font.size": 18,
            "axes.titlesize": 22,
            "axes.labelsize": 19,
            "xtick.labelsize": 16,
            "ytick.labelsize": 16,
            "legend.fontsize": 16,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.facecolor": "white",
            # A "$" in a question id or an answer is a dollar sign, not the start of a formula
            # (matplotlib's mathtext raised on "$\\frac{$" and the whole report failed).
            "text.parse_math": False,
        }
    )
    out: dict[str, str] = {}
    if f.per_day:
        days = date2num([_dt.date.fromisoformat(d) for d, _, _ in f.per_day])
        fig, ax = plt.subplots(figsize=(12, 5.5))
        ax.bar(days, [n for _, n, _ in f.per_day], color=BLUE, width=0.8)
        ax.xaxis_date()
        ax.set_title("Uses per day (cards placed)")
        ax.set_ylabel("uses")
        whole(ax.yaxis)
        fig.autofmt_xdate()
        ax.grid(axis="y", alpha=0.3)
        out["per_day"] = _png(fig)
    if f.per_type:
        shown = _top([(t, n) for t, n, _ in f.per_type], "other kinds")
        fig, ax = plt.subplots(figsize=(12, 1.6 + 0.9 * len(shown)))
        names = [_short(t.replace("_", " ")) for t, _ in shown][::-1]
        values = [n for _, n in shown][::-1]
        bars = ax.barh(range(len(names)), values, color=BLUE, tick_label=names)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=6, fontsize=18)
        ax.set_title("Uses per kind of card")
        ax.set_xlabel("uses")
        whole(ax.xaxis)
        ax.set_xlim(0, max(values) * 1.18 or 1)
        out["per_type"] = _png(fig)
    if any(n for _, n in f.durations):
        fig, ax = plt.subplots(figsize=(12, 5.5))
        labels = [label for label, _ in f.durations]
        values = [n for _, n in f.durations]
        bars = ax.bar(labels, values, color=BLUE)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=4, fontsize=18)
        ax.set_title("How long a card stayed in (sessions)")
        ax.set_ylabel("sessions")
        whole(ax.yaxis)
        ax.set_ylim(0, max(values) * 1.15 or 1)
        out["durations"] = _png(fig)
    if f.answers:
        # The questions most answered, when there are more than a page of plots (the table has all).
        questions = sorted(f.answers, key=lambda q: -sum(n for _, n in f.answers[q]))[:MAX_BARS]
        questions.sort(key=list(f.answers).index)
        rows = len(questions)
        fig, axes = plt.subplots(rows, 1, figsize=(12, 2.2 + 2.4 * rows), squeeze=False)
        for ax, question in zip(axes[:, 0], questions):
            pairs = _top([(_answer_label(v), n) for v, n in f.answers[question]], "other answers")
            labels = [_short(label) for label, _ in pairs]
            values = [n for _, n in pairs]
            bars = ax.barh(range(len(labels)), values[::-1], color=ORANGE, tick_label=labels[::-1])
            ax.bar_label(bars, labels=[str(v) for v in values[::-1]], padding=6, fontsize=17)
            ax.set_title(_short(question.replace("_", " ")), loc="left")
            ax.set_xlim(0, max(values) * 1.2 or 1)
            whole(ax.xaxis)
        fig.suptitle("Answers per question", fontsize=24, x=0.02, ha="left")
        fig.tight_layout()
        out["answers"] = _png(fig)
    if f.outages:
        days = date2num([_dt.date.fromisoformat(d) for d, _, _ in f.outages])
        fig, ax = plt.subplots(figsize=(12, 5.5))
        ax.bar(days, [m for _, _, m in f.outages], color=GREY, width=0.8)
        ax.xaxis_date()
        ax.set_title("Reader outages: minutes without a working reader, per day")
        ax.set_ylabel("minutes")
        fig.autofmt_xdate()
        ax.grid(axis="y", alpha=0.3)
        out["outages"] = _png(fig)
    return out


def _answer_label(value: str) -> str:
    faces = {"1": "1 very bad", "2": "2 bad", "3": "3 so-so", "4": "4 good", "5": "5 very good"}
    return faces.get(value, value.replace("_", " "))


# --- the page -----------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; font-size: 20px; line-height: 1.5; color: #111;
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 2.2rem; } h2 { font-size: 1.6rem; margin-top: 2.5rem; border-bottom: 3px solid #1F4E9C; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #888; padding: 0.3rem 0.8rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #E8EEF8; }
.note { background: #FFF6E0; padding: 0.6rem 1rem; border-left: 6px solid #C8581A; }
"""


def _table(headers: list[str], rows: list[tuple], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(_shown(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = f"{v:,}" if isinstance(v, int) else (f"{v:,.1f}" if isinstance(v, float) else str(v))
            text = html.escape(_shown(text))
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: str | None, alt: str) -> str:
    if png is None:
        return "<p>No data for this in the file.</p>"
    return f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">'


def render(f: Figures, pngs: dict[str, str], source: str) -> str:
    t = f.totals
    personal = f.meta.get("personal") == "1"
    span = f"{f.first_day} to {f.last_day}" if f.first_day else "no dates"
    unreadable = (
        f'<p class="note">{f.unreadable:,} rows were left out: their time is not one Klick writes '
        "(a clock gone wrong, or the file was changed after it was exported).</p>"
        if f.unreadable
        else ""
    )
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Klick pilot report</title><style>{CSS}</style></head><body>",
        "<h1>Klick pilot report</h1>",
        f"<p>From <b>{html.escape(source)}</b>: {t['devices']:,} devices, {html.escape(span)} (UTC). "
        f"{t['events']:,} events, {t['sessions']:,} sessions, {t['questions']:,} questions asked, "
        f"{t['answered']:,} answered.</p>",
        (
            '<p class="note">This file <b>includes personal data</b> (card IDs and labels). Keep it as the pilot\'s data protection plan says.</p>'
            if personal
            else "<p>Card IDs in this file are keyed hashes; devices are named by their pseudonyms.</p>"
        ),
        unreadable,
        "<h2>Uses per day</h2>",
        _img(pngs.get("per_day"), "Bar chart of cards placed per day"),
        _table(["day", "uses", "devices in use"], f.per_day, {1, 2}),
        "<h2>Uses per kind of card</h2>",
        _img(pngs.get("per_type"), "Bar chart of uses per kind of card"),
        _table(["kind of card", "uses", "median minutes"], [(a.replace("_", " "), n, m) for a, n, m in f.per_type], {1, 2}),
        "<h2>Session durations</h2>",
        _img(pngs.get("durations"), "Bar chart of how long cards stayed in"),
        _table(["card in for", "sessions"], f.durations, {1}),
        "<h2>Answers per question</h2>",
        _img(pngs.get("answers"), "Bar charts of the answers to each question"),
    ]
    answer_rows = [(q, _answer_label(v), n) for q, pairs in f.answers.items() for v, n in pairs]
    parts.append(_table(["question", "answer", "answers"], answer_rows, {2}))
    states = sorted({s for d in f.asked.values() for s in d})
    parts.append("<p>How each question fared:</p>")
    parts.append(
        _table(
            ["question"] + [STATE_NAMES.get(s, s) for s in states],
            [(q, *(d.get(s, 0) for s in states)) for q, d in f.asked.items()],
            set(range(1, len(states) + 1)),
        )
    )
    parts += [
        "<h2>Reader outages</h2>",
        _img(pngs.get("outages"), "Bar chart of minutes without a working reader per day"),
        _table(["day", "outages", "minutes down"], f.outages, {1, 2}),
        f'<p style="margin-top:3rem;color:#555">Made by klick report on {_dt.date.today().isoformat()}.</p>',
        "</body></html>\n",
    ]
    return "\n".join(parts)


def write_report(pilot: Path, out: Path) -> str:
    """Read an export or merged pilot file (read-only) and write the HTML page; returns a summary."""
    conn, meta = open_export(pilot)
    try:
        figures = collect(conn, meta)
    except sqlite3.DatabaseError as exc:
        raise ExportError(f"{pilot} cannot be read to the end (SQLite says: {exc}).") from None
    finally:
        conn.close()
    with warnings.catch_warnings():
        # A letter the plot's font lacks is drawn as a box; the tester needs no Python warning for it.
        warnings.simplefilter("ignore", UserWarning)
        pngs = _plots(figures)
    write_atomic(out, render(figures, pngs, Path(pilot).name))
    return f"{figures.totals['devices']} devices, {figures.totals['sessions']:,} sessions, {len(pngs)} plots"
