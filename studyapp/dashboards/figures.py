"""Plotly figure builders. Inputs are already-aggregated numbers; outputs are go.Figure objects.

Per-participant arrays go in as numpy arrays: plotly validates them without a Python loop and
writes them as base64 typed arrays (``{"dtype", "bdata"}``), which plotly.js reads natively;
on a study of thousands of participants that halves the page and most of its server time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studyapp.dashboards.stats import Summary

# Colour-blind-safe (Okabe-Ito) colours, one per arm in the study's order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
OUTCOME_NODES = [
    ("completed", "Completed"),
    ("returned", "Returned"),
    ("timed_out", "Timed out"),
    ("excluded", "Excluded"),
    ("declined", "Declined"),
    ("active", "Still active"),
]


# A few settings in the spirit of "plotly_white"; applying that named template costs far more
# server time than drawing the figures themselves.
_GRID = {"gridcolor": "#e5e9f0", "zerolinecolor": "#e5e9f0", "linecolor": "#c9ced4"}
TEMPLATE = {
    "layout": {
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#1b1f24"},
        "xaxis": _GRID,
        "yaxis": _GRID,
        "colorway": PALETTE,
    }
}


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def _layout(fig: go.Figure, title: str, **extra: Any) -> go.Figure:
    layout = {
        **fig.layout.to_plotly_json(),
        "title": {"text": title, "x": 0, "xanchor": "left"},
        "template": TEMPLATE,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "height": 380,
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }
    # The template goes to the constructor: update_layout(template=...) is far slower.
    return go.Figure(data=fig.data, layout=layout)


def _array(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size and np.all(array == np.round(array)) and np.abs(array).max() < 2**31:
        return array.astype(np.int32)  # ratings, turns, words: 4 bytes instead of 8
    return array


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def flow_sankey(flow: Any, colours: Mapping[str, str]) -> go.Figure:
    """CONSORT-style: entered -> consent -> arm -> outcome, with every way out on the side."""
    labels: list[str] = []
    sources: list[int] = []
    targets: list[int] = []
    values: list[int] = []
    link_colours: list[str] = []
    grey = "rgba(150,150,150,0.4)"

    def node(label: str, n: int) -> int:
        labels.append(f"{label} (n={n})")
        return len(labels) - 1

    def link(source: int, target: int, value: int, colour: str = grey) -> None:
        if value:
            sources.append(source)
            targets.append(target)
            values.append(value)
            link_colours.append(colour)

    groups = [flow.unassigned, *flow.arms]
    entered = node("Entered", flow.entered)
    consented = node("Consented", flow.consented)
    link(entered, consented, flow.consented)
    for label, n in [
        ("Declined consent", flow.unassigned.declined),
        ("Left before consenting", sum(g.left_before_consent for g in groups)),
        ("Deciding on consent", sum(g.deciding for g in groups)),
    ]:
        if n:
            link(entered, node(label, n), n)
    if flow.unassigned.consented:
        link(
            consented,
            node("Consented, not assigned", flow.unassigned.consented),
            flow.unassigned.consented,
        )
    outcome_index = {
        key: node(label, sum(getattr(a, key) for a in flow.arms)) for key, label in OUTCOME_NODES
    }
    for arm in flow.arms:
        colour = colours.get(arm.name, "#888888")
        arm_node = node(arm.name, arm.entered)
        link(consented, arm_node, arm.consented, _rgba(colour, 0.45))
        # Assigned without a recorded consent should not happen; shown rather than hidden.
        link(entered, arm_node, arm.entered - arm.consented, _rgba(colour, 0.45))
        for key, _ in OUTCOME_NODES:
            link(arm_node, outcome_index[key], getattr(arm, key), _rgba(colour, 0.35))
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "pad": 14, "thickness": 16},
            link={"source": sources, "target": targets, "value": values, "color": link_colours},
        )
    )
    return _layout(fig, "Participant flow", height=440)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def engagement_figure(
    by_arm: Mapping[str, Sequence[dict[str, Any]]], colours: Mapping[str, str]
) -> go.Figure:
    """In-chat interaction rating at each checkpoint turn: mean with its 95 % CI."""
    fig = go.Figure()
    for arm, points in by_arm.items():
        means = [p["mean"] for p in points]
        fig.add_trace(
            go.Scatter(
                name=arm,
                x=[p["turn"] for p in points],
                y=means,
                mode="lines+markers",
                line={"color": colours.get(arm)},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        _ci_part(p["ci_high"], m) for p, m in zip(points, means, strict=True)
                    ],
                    "arrayminus": [
                        _ci_part(m, p["ci_low"]) for p, m in zip(points, means, strict=True)
                    ],
                },
                customdata=[p["n"] for p in points],
                hovertemplate="turn %{x}: %{y:.2f} (n=%{customdata})<extra>" + arm + "</extra>",
            )
        )
    fig.update_xaxes(title="Turn", dtick=3)
    fig.update_yaxes(title="Interaction rating (mean, 95% CI)")
    return _layout(fig, "Interaction rating over turns")


def _ci_part(high: float | None, low: float | None) -> float | None:
    if high is None or low is None or not (math.isfinite(high) and math.isfinite(low)):
        return None
    return high - low


def distribution_figure(
    groups: Mapping[str, Sequence[float]],
    colours: Mapping[str, str],
    *,
    title: str,
    axis: str,
    kind: str = "violin",
) -> go.Figure:
    """One violin (or box) per arm, with its box, mean and points."""
    fig = go.Figure()
    for arm, values in groups.items():
        common = {"name": arm, "y": _array(values), "marker": {"color": colours.get(arm)}}
        if kind == "violin":
            fig.add_trace(
                go.Violin(
                    **common,
                    box={"visible": True},
                    meanline={"visible": True},
                    points="all",
                    spanmode="hard",
                )
            )
        else:
            fig.add_trace(go.Box(**common, boxmean=True, boxpoints="all", jitter=0.4))
    fig.update_yaxes(title=axis)
    return _layout(fig, title, showlegend=False)


def mean_ci_figure(
    summaries: Mapping[str, Summary], colours: Mapping[str, str], *, title: str, axis: str
) -> go.Figure:
    """Mean per arm with its bootstrap 95 % CI as error bars."""
    arms = list(summaries)
    means = [_finite(summaries[a].mean) for a in arms]
    fig = go.Figure(
        go.Bar(
            x=arms,
            y=means,
            marker={"color": [colours.get(a) for a in arms]},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [_ci_part(summaries[a].ci_high, summaries[a].mean) for a in arms],
                "arrayminus": [_ci_part(summaries[a].mean, summaries[a].ci_low) for a in arms],
            },
            customdata=[summaries[a].n for a in arms],
            hovertemplate="%{x}: %{y:.2f} (n=%{customdata})<extra></extra>",
        )
    )
    fig.update_yaxes(title=axis)
    return _layout(fig, title, showlegend=False)


def conversation_size_figure(
    panels: Mapping[str, Mapping[str, Sequence[float]]], colours: Mapping[str, str]
) -> go.Figure:
    """Small multiples: one box panel per measure (turns, words, tokens), one box per arm."""
    titles = list(panels)
    cols = 3
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.14, horizontal_spacing=0.08
    )
    for index, title in enumerate(titles):
        for arm, values in panels[title].items():
            fig.add_trace(
                go.Box(
                    name=arm,
                    y=_array(values),
                    marker={"color": colours.get(arm)},
                    boxmean=True,
                    legendgroup=arm,
                    showlegend=index == 0,
                    meta=title,
                ),
                row=index // cols + 1,
                col=index % cols + 1,
            )
    fig.update_xaxes(showticklabels=False)
    return _layout(fig, "Turns, words and tokens per conversation", height=300 * rows + 80)


def latency_figure(
    latency: Mapping[str, Mapping[str, Any]], colours: Mapping[str, str]
) -> go.Figure:
    """Time to first token per arm: median and 95th percentile (milliseconds)."""
    arms = list(latency)
    fig = go.Figure()
    for key, label, pattern in [("ttft_p50", "median (p50)", ""), ("ttft_p95", "p95", "/")]:
        fig.add_trace(
            go.Bar(
                name=label,
                x=arms,
                y=[_finite(latency[a][key]) for a in arms],
                marker={"color": [colours.get(a) for a in arms], "pattern": {"shape": pattern}},
            )
        )
    fig.update_yaxes(title="Time to first token (ms)")
    return _layout(fig, "Time to first token", barmode="group")
