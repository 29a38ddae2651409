"""Training-data exports: rows of one kind per split, plus the dataset card."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.db.models import Count
from django.utils import timezone

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.analysis import Progress, no_progress
from studyapp.exports.datasets.card import CardFacts, card_markdown
from studyapp.exports.datasets.conversations import conversations_iter
from studyapp.exports.datasets.kinds import KINDS, DatasetOptions
from studyapp.exports.scope import ExportError, ExportScope
from studyapp.exports.writers import JsonlWriter
from studyapp.studies.models import Study
from studyapp.writing.models import Message, Role

DATASET_FORMATS = ("jsonl", "parquet")
PARQUET_ROWS_PER_GROUP = 2000


@dataclass(frozen=True)
class DatasetResult:
    directory: Path
    files: list[Path]
    rows: dict[str, int]  # split -> rows


class _ParquetRows:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []

    def write_record(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        if len(self._rows) >= PARQUET_ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def split_of(pseudonym: str, test_fraction: float) -> str:
    """A participant's split, stable across exports (a hash of the pseudonym)."""
    if test_fraction <= 0:
        return "train"
    position = int(hashlib.sha256(pseudonym.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return "test" if position < test_fraction else "train"


def reply_sources(scope: ExportScope) -> Counter:
    """Assistant replies of the population by (backend, model): one grouped query."""
    rows = (
        Message.objects.filter(participation__in=scope.participation_ids(), role=Role.ASSISTANT)
        .values_list("backend", "model")
        .annotate(n=Count("id"))
        .order_by()
    )
    return Counter({(backend, model): n for backend, model, n in rows})


def reply_prompts(scope: ExportScope) -> Counter:
    """Assistant replies of the population by (arm, prompt version, prompt sha256)."""
    rows = (
        Message.objects.filter(participation__in=scope.participation_ids(), role=Role.ASSISTANT)
        .values_list("participation__condition__name", "prompt_version", "prompt_sha256")
        .annotate(n=Count("id"))
        .order_by()
    )
    return Counter({(arm or "", version, digest): n for arm, version, digest, n in rows})


def dataset_export(
    *,
    study: Study,
    kind: str,
    out_dir: Path,
    fmt: str = "jsonl",
    participation_filter: ParticipationFilter,
    options: DatasetOptions | None = None,
    progress: Progress = no_progress,
) -> DatasetResult:
    """Write ``out_dir/<split>.<fmt>`` for each split and ``out_dir/README.md`` (the card).

    Reads conversations a chunk of participations at a time and writes rows as they come.
    """
    if kind not in KINDS:
        raise ExportError(f"unknown dataset kind {kind!r}: use one of {', '.join(KINDS)}")
    if fmt not in DATASET_FORMATS:
        raise ExportError(f"datasets are written as {' or '.join(DATASET_FORMATS)}, not {fmt!r}")
    options = options or DatasetOptions()
    spec = KINDS[kind]
    out_dir.mkdir(parents=True, exist_ok=True)
    scope = ExportScope.build(study=study, participation_filter=participation_filter)
    splits = ["train", "test"] if options.test_fraction > 0 else ["train"]
    paths = {split: out_dir / f"{split}.{fmt}" for split in splits}
    writers = {
        split: JsonlWriter(path, []) if fmt == "jsonl" else _ParquetRows(path, spec.schema)
        for split, path in paths.items()
    }
    rows = dict.fromkeys(splits, 0)
    stats: Counter = Counter()
    platforms: Counter = Counter(p.platform for p in scope.people.values())
    conditions: Counter = Counter()
    used = 0
    total = len(scope.people)
    try:
        for done, conversation in enumerate(conversations_iter(scope), start=1):
            split = split_of(conversation.person.pseudonym, options.test_fraction)
            produced = 0
            for row in spec.build(conversation, options, stats):
                writers[split].write_record(row)
                produced += 1
            if conversation.truncated:
                stats["conversations cut at a failed reply"] += 1
            if produced:
                used += 1
                conditions[conversation.person.condition] += 1
            rows[split] += produced
            if done % 100 == 0:
                progress(done, total, f"{kind}: {done}/{total} conversations")
    finally:
        for writer in writers.values():
            writer.close()
    if not sum(rows.values()):
        # A 0-byte file is no dataset (``datasets`` cannot load it): write nothing.
        for path in paths.values():
            path.unlink(missing_ok=True)
        reasons = "; ".join(f"{reason}: {n}" for reason, n in sorted(stats.items()))
        raise ExportError(
            f"the {kind} dataset would be empty: {total} participants in the population"
            + (f" ({reasons})" if reasons else "") + "; nothing was written"
        )
    facts = CardFacts(
        study=study, kind=spec, fmt=fmt, participation_filter=participation_filter,
        options=options, generated_at=timezone.now().isoformat(timespec="seconds"),
        split_files={s: p.name for s, p in paths.items()}, split_rows=rows,
        participants=total, conversations_used=used, platforms=platforms,
        conditions=conditions, stats=stats, models=reply_sources(scope),
        prompts=reply_prompts(scope),
    )
    card = out_dir / "README.md"
    card.write_text(card_markdown(facts), encoding="utf-8")
    progress(total, total, f"{kind}: {sum(rows.values())} rows from {used} conversations")
    return DatasetResult(directory=out_dir, files=[*paths.values(), card], rows=rows)
