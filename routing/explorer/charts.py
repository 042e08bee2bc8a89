"""Inline SVG charts drawn on the server (no JavaScript, no external library)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape

from django.utils.safestring import SafeString, mark_safe

from routing.explorer.numbers import money

OUTCOME_COLOURS = {"route": "#2f855a", "queue": "#b7791f", "reject": "#c53030"}


def _money(value: Decimal | float) -> str:
    return money(value)


#: Rough width of one character of an 11px label (DejaVu Sans averages ~0.6em).
_CHAR_WIDTH = 6.6


def _label(x: float, y: float, text: str, colour: str, *, width: int) -> str:
    """A label centred on ``x`` unless that would cut it at an edge of the chart:
    then it starts at ``x`` (left edge) or ends there (right edge)."""
    half = len(text) * _CHAR_WIDTH / 2
    anchor = "middle"
    if x - half < 2:
        anchor = "start"
    elif x + half > width - 2:
        anchor = "end"
    return (
        f'<text x="{x:.1f}" y="{y}" font-size="11" text-anchor="{anchor}" '
        f'fill="{colour}">{escape(text)}</text>'
    )


def budget_gauge(
    *,
    spent: Decimal,
    reserved: Decimal,
    limit: Decimal | None,
    soft_mark: Decimal | None,
    projected: Decimal,
    width: int = 900,
) -> SafeString:
    """Spent and reserved as stacked bars against the limit, with soft/hard marks
    and the projection to the period's end."""
    height, top, bar_h, pad = 96, 22, 30, 10
    scale_max = max(
        float(limit or 0) * 1.15,
        float(spent + reserved) * 1.05,
        float(projected) * 1.05,
        1.0,
    )
    usable = width - 2 * pad

    def x(value: Decimal | float) -> float:
        return pad + usable * min(float(value) / scale_max, 1.0)

    parts = [
        f'<div class="chart-box"><svg class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="spend {_money(spent)} of '
        f'{_money(limit) if limit is not None else "no limit"}">',
        f'<rect x="{pad}" y="{top}" width="{usable}" height="{bar_h}" fill="#edf2f7"/>',
        f'<rect class="spent" x="{pad}" y="{top}" width="{x(spent) - pad:.1f}" '
        f'height="{bar_h}" fill="#3182ce"><title>spent {_money(spent)}</title></rect>',
        f'<rect class="reserved" x="{x(spent):.1f}" y="{top}" '
        f'width="{x(spent + reserved) - x(spent):.1f}" height="{bar_h}" '
        f'fill="#90cdf4"><title>reserved {_money(reserved)}</title></rect>',
        f'<line class="projection" x1="{x(projected):.1f}" x2="{x(projected):.1f}" '
        f'y1="{top - 6}" y2="{top + bar_h + 6}" stroke="#4a5568" '
        f'stroke-dasharray="4 3"><title>projected {_money(projected)}</title></line>',
        _label(
            x(projected),
            top + bar_h + 20,
            f"projected {_money(projected)}",
            "#4a5568",
            width=width,
        ),
    ]
    for label, value, colour, css in (
        ("soft", soft_mark, "#d69e2e", "soft-mark"),
        ("hard", limit, "#c53030", "hard-mark"),
    ):
        if value is None:
            continue
        parts.append(
            f'<line class="{css}" x1="{x(value):.1f}" x2="{x(value):.1f}" '
            f'y1="{top - 10}" y2="{top + bar_h + 4}" stroke="{colour}" '
            f'stroke-width="2"><title>{label} limit {_money(value)}</title></line>'
            + _label(
                x(value), top - 12, f"{label} {_money(value)}", colour, width=width
            )
        )
    parts.append("</svg></div>")
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers only


def outcomes_per_day(
    axis: list[date], series: dict[str, list[int]], *, width: int = 900
) -> SafeString:
    """Stacked bars: decisions per day by outcome."""
    height, pad_left, pad_bottom, pad_top = 180, 44, 22, 10
    days = max(len(axis), 1)
    totals = [sum(values[i] for values in series.values()) for i in range(len(axis))]
    top = max(totals, default=0) or 1
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left - 8) / days
    bar_w = max(slot * 0.7, 1)
    parts = [
        f'<div class="chart-box"><svg class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="decisions per day by outcome">',
        f'<text x="4" y="{pad_top + 8}" font-size="10" fill="#4a5568">{top:,}</text>',
        f'<text x="4" y="{height - pad_bottom}" font-size="10" fill="#4a5568">0</text>',
    ]
    for i, day in enumerate(axis):
        x = pad_left + i * slot
        y = height - pad_bottom
        for outcome in ("route", "queue", "reject"):
            count = series.get(outcome, [0] * len(axis))[i]
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(
                f'<rect class="bar-{outcome}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{OUTCOME_COLOURS[outcome]}"><title>{escape(str(day))} '
                f"{outcome}: {count:,}</title></rect>"
            )
        if days <= 16 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" font-size="10" '
                f'text-anchor="middle" fill="#4a5568">{day:%m-%d}</text>'
            )
    parts.append("</svg></div>")
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers and dates


#: Colours of stacked series, in order (``other`` is always grey).
SERIES_COLOURS = (
    "#3182ce",
    "#dd6b20",
    "#38a169",
    "#805ad5",
    "#d53f8c",
    "#319795",
    "#d69e2e",
    "#5a67d8",
    "#e53e3e",
    "#718096",
)
OTHER_COLOUR = "#a0aec0"


def series_colours(names: list[str]) -> dict[str, str]:
    """A colour per series name, stable for the order given."""
    colours: dict[str, str] = {}
    for i, name in enumerate(n for n in names if n != "other"):
        colours[name] = SERIES_COLOURS[i % len(SERIES_COLOURS)]
    if "other" in names:
        colours["other"] = OTHER_COLOUR
    return colours


def _day_labels(axis: list[date], x_of: list[float], height: int) -> list[str]:
    """Date labels under the bars, thinned so they never overlap."""
    every = max(1, -(-len(axis) // 15))
    return [
        f'<text x="{x:.1f}" y="{height - 6}" font-size="10" '
        f'text-anchor="middle" fill="#4a5568">{day:%m-%d}</text>'
        for i, (day, x) in enumerate(zip(axis, x_of, strict=True))
        if i % every == 0
    ]


def spend_per_day(
    axis: list[date], series: dict[str, list[Decimal]], *, width: int = 900
) -> SafeString:
    """Stacked bars: real cost per day, one colour per series (e.g. per model)."""
    height, pad_left, pad_bottom, pad_top = 200, 56, 22, 12
    days = max(len(axis), 1)
    totals = [
        sum((v[i] for v in series.values()), Decimal(0)) for i in range(len(axis))
    ]
    top = float(max(totals, default=0)) or 1.0
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left - 8) / days
    bar_w = max(slot * 0.7, 1)
    colours = series_colours(list(series))
    parts = _money_chart_open(
        "spend-chart",
        "real cost per day, stacked by series",
        width=width,
        height=height,
        top=top,
        pad_top=pad_top,
        pad_bottom=pad_bottom,
    )
    centres = []
    for i, day in enumerate(axis):
        x = pad_left + i * slot
        centres.append(x + bar_w / 2)
        y = float(height - pad_bottom)
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = plot_h * float(value) / top
            y -= h
            parts.append(
                f'<rect class="bar-series" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{colours[name]}"><title>{day} {escape(name or "(none)")}: '
                f"{_money(value)}</title></rect>"
            )
        if totals[i]:
            parts.append(
                f'<rect class="bar-day" x="{x:.1f}" y="{pad_top}" '
                f'width="{bar_w:.1f}" height="{plot_h}" fill="transparent">'
                f"<title>{day} total: {_money(totals[i])}</title></rect>"
            )
    parts += _day_labels(axis, centres, height)
    parts.append("</svg></div>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers, dates, escaped names


def _money_chart_open(
    css: str,
    what: str,
    *,
    width: int,
    height: int,
    top: float,
    pad_top: int,
    pad_bottom: int,
) -> list[str]:
    """The opening of a per-day money chart: the SVG and its $ axis marks."""
    return [
        f'<div class="chart-box"><svg class="chart {css}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{what}; the table below has the figures">',
        f'<text x="4" y="{pad_top + 8}" font-size="10" fill="#4a5568">'
        f"{_money(top)}</text>",
        f'<text x="4" y="{height - pad_bottom}" font-size="10" fill="#4a5568">'
        f"$0</text>",
    ]


def estimate_vs_real(
    axis: list[date],
    estimated: list[Decimal],
    real: list[Decimal],
    *,
    width: int = 900,
) -> SafeString:
    """Paired bars per day: the sum of estimates beside the real cost of the
    same usages."""
    height, pad_left, pad_bottom, pad_top = 160, 56, 22, 12
    days = max(len(axis), 1)
    top = float(max([*estimated, *real], default=0)) or 1.0
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left - 8) / days
    bar_w = max(slot * 0.38, 0.5)
    parts = _money_chart_open(
        "accuracy-chart",
        "estimated against real cost per day",
        width=width,
        height=height,
        top=top,
        pad_top=pad_top,
        pad_bottom=pad_bottom,
    )
    centres = []
    for i, day in enumerate(axis):
        x = pad_left + i * slot
        centres.append(x + bar_w)
        for offset, css, label, colour, value in (
            (0.0, "bar-estimated", "estimated", "#a0aec0", estimated[i]),
            (bar_w, "bar-real", "real", "#2b6cb0", real[i]),
        ):
            if not value:
                continue
            h = plot_h * float(value) / top
            parts.append(
                f'<rect class="{css}" x="{x + offset:.1f}" '
                f'y="{height - pad_bottom - h:.1f}" width="{bar_w:.1f}" '
                f'height="{max(h, 0.5):.1f}" fill="{colour}"><title>{day} {label}: '
                f"{_money(value)}</title></rect>"
            )
    parts += _day_labels(axis, centres, height)
    parts.append("</svg></div>")
    return mark_safe("".join(parts))  # noqa: S308 - built from numbers and dates


#: A bar of a backtest chart: its label, its length, the figure written beside
#: it and its colour.
Bar = tuple[str, float, str, str]


def horizontal_bars(
    bars: list[Bar], *, css: str, what: str, width: int = 900
) -> SafeString:
    """One labelled horizontal bar per row, the figure beside it (a backtest's
    outcome shift, cost before/after, backend shift)."""
    row_h, pad, figure_w = 24, 8, 90
    label_w = min(260, round(width * 0.34))
    height = max(len(bars), 1) * row_h + 2 * pad
    usable = width - label_w - figure_w - 2 * pad
    top = max((value for _, value, _, _ in bars), default=0.0) or 1.0
    parts = [
        f'<div class="chart-box"><svg class="chart {css}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(what)}; the table beside it has the figures">'
    ]
    for i, (label, value, figure, colour) in enumerate(bars):
        y = pad + i * row_h
        length = max(usable * value / top, 1.0 if value else 0.0)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" font-size="12" text-anchor="end" '
            f'fill="#2d3748">{escape(label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{length:.1f}" '
            f'height="{row_h - 6}" fill="{colour}"><title>{escape(label)}: '
            f"{escape(figure)}</title></rect>"
            f'<text x="{label_w + length + 6:.1f}" y="{y + 16}" font-size="12" '
            f'fill="#2d3748">{escape(figure)}</text>'
        )
    parts.append("</svg></div>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped names


def outcome_shift(outcomes: dict[str, int], *, width: int = 460) -> SafeString:
    """Decisions per ``before->after`` outcome pair, coloured by the outcome
    after (grey when unchanged)."""
    bars: list[Bar] = []
    for pair, count in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        before, _, after = pair.partition("->")
        colour = "#a0aec0" if before == after else OUTCOME_COLOURS.get(after, "#718096")
        bars.append((f"{before} → {after}", float(count), f"{count:,}", colour))
    return horizontal_bars(bars, css="outcome-shift", what="outcome shift", width=width)


def cost_before_after(before: float, after: float, *, width: int = 460) -> SafeString:
    """The estimated cost of the recorded decisions beside their replays'."""
    return horizontal_bars(
        [
            ("before (recorded)", before, _money(before), "#a0aec0"),
            ("after (replayed)", after, _money(after), "#2b6cb0"),
        ],
        css="cost-shift",
        what="estimated cost before and after",
        width=width,
    )


def backend_shift(shifts: dict[str, int], *, top: int = 10) -> SafeString:
    """The most frequent ``before->after`` backend moves."""
    moves = sorted(shifts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    bars: list[Bar] = [
        (pair.replace("->", " → "), float(count), f"{count:,}", "#805ad5")
        for pair, count in moves
    ]
    return horizontal_bars(bars, css="backend-shift", what="backend shift")
