"""Reading the dashboards' HTML back: figure JSON, including plotly's base64 typed arrays."""

import base64
import json
import re

import numpy as np

_FIGURE = re.compile(r'<script id="fig-([\w-]+)" type="application/json">(.*?)</script>', re.S)


def figures_of(response) -> dict[str, dict]:
    html = response.content.decode()
    return {m[1]: json.loads(m[2]) for m in _FIGURE.finditer(html)}


def array(value) -> list:
    """A data array as plotly.js reads it: a plain list or ``{"dtype", "bdata"}``."""
    if isinstance(value, dict):
        raw = base64.b64decode(value["bdata"])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).tolist()
    return list(value)


def traces(fig: dict) -> dict[str, dict]:
    return {t["name"]: t for t in fig["data"]}
