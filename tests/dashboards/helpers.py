"""Reading the dashboards' HTML back: figure JSON, tagged cells."""

import json
import re

_FIGURE = re.compile(r'<script id="fig-([\w-]+)" type="application/json">(.*?)</script>', re.S)


def figures_of(response) -> dict[str, dict]:
    html = response.content.decode()
    return {m[1]: json.loads(m[2]) for m in _FIGURE.finditer(html)}


def traces(fig: dict) -> dict[str, dict]:
    return {t["name"]: t for t in fig["data"]}
