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
# Completers who failed an attention check go to "Excluded from analysis" with the researchers'
# exclusions, never silently into "Completed, analysed".
OUTCOME_NODES = [
    ("analysed", "Completed, analysed"),
    ("excluded_from_analysis", "Excluded from analysis"),
    ("returned", "Returned"),
    ("timed_out", "Timed out"),
    ("technical_problem", "Technical problem"),
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
    """CONSORT-style: entered -> consent -> arm -> outcome, with every way out on the side
    (erased participants included, from their erasure records)."""
    labels: list[str] = []
    sources: list[int] = []
    targets: list[int] = []
    values: list[int] = []
    link_colours: list[str] = []
    grey = "rgba(150,150,150,0.4)"

    node_colours: list[str] = []

    def node(label: str, n: int, colour: str = "#9aa0a6") -> int:
        labels.append(f"{label} (n={n})")
        node_colours.append(colour)
        return len(labels) - 1

    def link(source: int, target: int, value: int, colour: str = grey) -> None:
        if value:
            sources.append(source)
            targets.append(target)
            values.append(value)
            link_colours.append(colour)

    groups = [flow.unassigned, *flow.arms]
    # Erased participants are gone from every table but their erasure record (arm and status):
    # they count where they entered and leave through an "Erased" box, so the flow adds up.
    # An arm is assigned at consent, so an erased participant with an arm had consented.
    erased_in_arms = sum(a.erased for a in flow.arms)
    entered = node("Entered", flow.entered + flow.erased)
    consented = node("Consented", flow.consented + erased_in_arms)
    link(entered, consented, flow.consented + erased_in_arms)
    erased = node("Erased", flow.erased) if flow.erased else None
    if erased is not None:
        link(entered, erased, flow.unassigned.erased)
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
        arm_node = node(arm.name, arm.entered + arm.erased, colour)
        link(consented, arm_node, arm.consented + arm.erased, _rgba(colour, 0.45))
        if erased is not None:
            link(arm_node, erased, arm.erased, _rgba(colour, 0.35))
        # Assigned without a recorded consent should not happen; shown rather than hidden.
        link(entered, arm_node, arm.entered - arm.consented, _rgba(colour, 0.45))
        for key, _ in OUTCOME_NODES:
            link(arm_node, outcome_index[key], getattr(arm, key), _rgba(colour, 0.35))
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            # Arm nodes in the arm's colour, as in every other figure (plotly's default
            # node colours would give each arm another one).
            node={"label": labels, "pad": 14, "thickness": 16, "color": node_colours},
            link={"source": sources, "target": targets, "value": values, "color": link_colours},
        )
    )
    return _layout(fig, "Participant flow", height=440)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# A 95 % t interval from two ratings spans most of the scale; a study file can ask for more
# (analysis.min_n_per_point).
MIN_N_PER_POINT = 3


def engagement_figure(
    by_arm: Mapping[str, Sequence[dict[str, Any]]],
    colours: Mapping[str, str],
    *,
    scale: tuple[int, int] = (1, 10),
    min_n: int = MIN_N_PER_POINT,
) -> go.Figure:
    """In-chat interaction rating at each checkpoint turn: mean with its 95 % CI, n under it.

    A point rated by fewer than ``min_n`` participants is left out of the arm's line (a gap)
    and drawn apart as an open marker: one or two survivors must not steer the curve.
    """
    low, high = scale
    fig = go.Figure()
    for arm, points in by_arm.items():
        colour = colours.get(arm)
        firm = [p["n"] >= min_n for p in points]
        fig.add_trace(
            _rating_points(arm, points, [p["mean"] if f else None for p, f in zip(
                points, firm, strict=True)], scale, mode="lines+markers+text",
                line={"color": colour}, marker={"color": colour}, connectgaps=False)
        )
        if not all(firm):
            fig.add_trace(
                _rating_points(f"{arm} (n < {min_n})", points, [
                    None if f else p["mean"] for p, f in zip(points, firm, strict=True)
                ], scale, mode="markers+text", legendgroup=arm,
                    marker={"color": colour, "symbol": "circle-open", "size": 9})
            )
    fig.update_xaxes(title="Turn", dtick=3)
    fig.update_yaxes(title="Interaction rating (mean, 95% CI)", range=[low, high])
    note = (
        f"n under each point. Points with n < {min_n} are not joined to the line. Later "
        "checkpoints only hold the participants whose chats lasted that long (survivors)."
    )
    return _layout(
        fig, "Interaction rating over turns", height=420,
        margin={"l": 60, "r": 20, "t": 90, "b": 50},
        annotations=[{"text": note, "xref": "paper", "yref": "paper", "x": 0, "y": 1.04,
                      "xanchor": "left", "yanchor": "bottom", "showarrow": False,
                      "font": {"size": 11, "color": "#57606a"}}],
    )


def _rating_points(
    name: str, points: Sequence[dict[str, Any]], ys: list[float | None],
    scale: tuple[int, int], **style: Any,
) -> go.Scatter:
    low, high = scale
    # A mean rating cannot leave the scale: neither can the interval drawn around it.
    highs = [_ci_part(None if p["ci_high"] is None else min(p["ci_high"], high), y)
             for p, y in zip(points, ys, strict=True)]
    lows = [_ci_part(y, None if p["ci_low"] is None else max(p["ci_low"], low))
            for p, y in zip(points, ys, strict=True)]
    return go.Scatter(
        name=name, x=[p["turn"] for p in points], y=ys,
        text=[f"n={p['n']}" if y is not None else "" for p, y in zip(points, ys, strict=True)],
        textposition="bottom center", textfont={"size": 10}, cliponaxis=False,
        error_y={"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
        customdata=[p["n"] for p in points],
        hovertemplate="turn %{x}: %{y:.2f} (n=%{customdata})<extra>" + name + "</extra>",
        **style,
    )


def _ci_part(high: float | None, low: float | None) -> float | None:
    if high is None or low is None or not (math.isfinite(high) and math.isfinite(low)):
        return None
    return max(high - low, 0.0)


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
    summaries: Mapping[str, Summary],
    colours: Mapping[str, str],
    *,
    title: str,
    axis: str,
    scale: tuple[int, int] | None = None,
) -> go.Figure:
    """Mean per arm with its bootstrap 95 % CI as error bars.

    On a rating scale the axis spans the scale (1-10, not 0-10): a bar from 0 would show
    a length no answer could have.
    """
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
            text=[f"n={summaries[a].n}" for a in arms],
            textposition="inside",
            insidetextanchor="start",
        )
    )
    fig.update_yaxes(title=axis, range=list(scale) if scale else None)
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


def simulated_vs_real_figure(panel: Any, colours: Mapping[str, str]) -> go.Figure:
    """Small multiples: the in-chat rating over turns (real solid, simulated dashed), then one
    panel per outcome with the real and the simulated arm means side by side."""
    titles = ["In-chat rating over turns", *(o.label for o in panel.outcomes)]
    cols = 4
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.18, horizontal_spacing=0.07
    )
    for population, dash in (("real", "solid"), ("simulated", "dash")):
        for arm, points in panel.engagement.get(population, {}).items():
            fig.add_trace(
                go.Scatter(
                    name=f"{arm} ({population})",
                    x=[p["turn"] for p in points],
                    y=[p["mean"] for p in points],
                    mode="lines+markers",
                    line={"color": colours.get(arm), "dash": dash},
                    showlegend=False,
                    meta=population,
                ),
                row=1,
                col=1,
            )
    for index, outcome in enumerate(panel.outcomes, start=1):
        for population, opacity in (("real", 1.0), ("simulated", 0.45)):
            means = [
                _finite(a.real_mean if population == "real" else a.simulated_mean)
                for a in outcome.arms
            ]
            fig.add_trace(
                go.Bar(
                    name=population,
                    x=[a.arm for a in outcome.arms],
                    y=means,
                    marker={
                        "color": [colours.get(a.arm) for a in outcome.arms],
                        "opacity": opacity,
                    },
                    legendgroup=population,
                    showlegend=index == 1,
                    meta=outcome.key,
                ),
                row=index // cols + 1,
                col=index % cols + 1,
            )
    fig.update_layout(barmode="group")
    return _layout(fig, "Simulated vs real participants (faded bars, dashed lines: simulated)",
                   height=300 * rows + 80)  # fmt: skip
