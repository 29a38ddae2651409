"""The codebook: every exported column's name, type, meaning and values, as JSON and Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from studyapp.exports.tables import TABLES, Column, Table
from studyapp.studies.models import Study

_TYPE_NOTES = {
    "string": "text (UTF-8)",
    "integer": "whole number",
    "float": "decimal number",
    "boolean": "true / false",
    "timestamp": "date and time, UTC (ISO 8601 in CSV and JSONL)",
    "json": "nested value: a JSON string in CSV and Parquet, nested in JSONL",
}

GENERIC = {
    "@conditions": "the study file's condition names",
    "@document_types": "the study file's document type keys",
    "@survey_keys": "final: the study file's survey question keys; pre-writing: 'topic' and "
    "the question texts",
}


def study_values(study: Study | None) -> dict[str, list[str] | str]:
    """The study-specific value lists named by ``@`` placeholders in the column definitions."""
    if study is None:
        return dict(GENERIC)
    conditions: dict[str, None] = {}
    doc_types: dict[str, None] = {}
    keys: dict[str, None] = {"topic": None}
    for version in study.versions.order_by("number"):
        spec = version.spec
        conditions.update(dict.fromkeys(c["name"] for c in spec.get("conditions", [])))
        doc_types.update(dict.fromkeys(t["key"] for t in spec.get("document_types", [])))
        survey = spec.get("survey") or {}
        keys.update(dict.fromkeys(q["key"] for q in survey.get("questions", [])))
        if survey.get("attention_check"):
            keys[survey["attention_check"]["key"]] = None
    return {
        "@conditions": list(conditions),
        "@document_types": list(doc_types),
        "@survey_keys": [*keys, "(pre-writing question texts)"],
    }


def _values(column: Column, values: dict[str, Any]) -> list[str] | str:
    if isinstance(column.values, tuple):
        return list(column.values)
    return values.get(column.values, column.values)


def codebook_dict(
    *,
    study: Study | None,
    tables: Sequence[Table] = TABLES,
    counts: dict[str, int] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    values = study_values(study)
    return {
        **(meta or {}),
        "types": _TYPE_NOTES,
        "tables": [
            {
                "name": table.name,
                "description": table.description,
                **({"rows": counts[table.name]} if counts and table.name in counts else {}),
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "meaning": c.meaning,
                        "values": _values(c, values),
                    }
                    for c in table.columns
                ],
            }
            for table in tables
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def codebook_markdown(book: dict[str, Any]) -> str:
    lines = ["# Codebook", ""]
    if book.get("study"):
        lines += [f"Study: `{book['study']}` — {book.get('title', '')}", ""]
    if book.get("population"):
        lines += [f"Population: {book['population']}", ""]
    if book.get("generated_at"):
        lines += [f"Generated: {book['generated_at']}", ""]
    lines += [
        "Every table is keyed by `participant`, a keyed pseudonym (HMAC-SHA256 of the platform "
        "and platform id under a per-study secret, 16 hex characters). Platform ids never "
        "appear in these files; where a participant typed their own id into the chat or the "
        "document it is replaced by `[platform id]`.",
        "",
        "## Types",
        "",
        "| type | meaning |",
        "| --- | --- |",
        *(f"| {name} | {note} |" for name, note in book["types"].items()),
        "",
    ]
    for table in book["tables"]:
        rows = f" ({table['rows']} rows)" if "rows" in table else ""
        lines += [f"## {table['name']}{rows}", "", table["description"], ""]
        lines += ["| column | type | meaning | values |", "| --- | --- | --- | --- |"]
        for column in table["columns"]:
            values = column["values"]
            shown = ", ".join(f"`{v}`" for v in values) if isinstance(values, list) else values
            lines.append(
                f"| `{column['name']}` | {column['type']} | {_cell(column['meaning'])} | "
                f"{_cell(shown)} |"
            )
        lines.append("")
    return "\n".join(lines)


def codebook_json(book: dict[str, Any]) -> str:
    return json.dumps(book, indent=2, ensure_ascii=False) + "\n"
