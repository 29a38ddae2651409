"""The analysis export: every table of a study in one format, plus the codebook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.codebook import codebook_dict, codebook_json, codebook_markdown
from studyapp.exports.scope import ExportError, ExportScope
from studyapp.exports.tables import TABLES, Table
from studyapp.exports.writers import WRITERS, open_writer
from studyapp.studies.models import Study

# done, total, message
Progress = Callable[[int, int, str], None]
PROGRESS_EVERY = 5000


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files: list[Path]
    counts: dict[str, int]


def no_progress(done: int, total: int, message: str) -> None:
    return None


def study_export(
    *,
    study: Study,
    out_dir: Path,
    fmt: str,
    participation_filter: ParticipationFilter,
    tables: Sequence[Table] = TABLES,
    progress: Progress = no_progress,
) -> ExportResult:
    """Write each table to ``out_dir/<table>.<fmt>`` plus codebook.md and codebook.json.

    Rows stream from server-side cursors to the files; ``progress`` is called every few
    thousand rows with (rows written, rows expected, message). Existing files are overwritten.
    """
    if fmt not in WRITERS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(WRITERS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scope = ExportScope.build(study=study, participation_filter=participation_filter)
    expected = {t.name: t.count(scope) for t in tables}
    total = sum(expected.values())
    done = 0
    counts: dict[str, int] = {}
    files: list[Path] = []
    for table in tables:
        path = out_dir / f"{table.name}.{fmt}"
        writer = open_writer(fmt, path, table.columns)
        written = 0
        try:
            for row in table.rows(scope):
                writer.write(row)
                written += 1
                if written % PROGRESS_EVERY == 0:
                    progress(done + written, total, f"{table.name}: {written} rows")
        finally:
            writer.close()
        # Survey answers expand one stored response into several rows.
        done += expected[table.name]
        counts[table.name] = written
        files.append(path)
        progress(done, total, f"{table.name}: {written} rows written")
    meta = {
        "study": study.slug,
        "title": study.title,
        "versions": list(study.versions.order_by("number").values_list("number", flat=True)),
        "format": fmt,
        "population": participation_filter.describe(),
        "filter": participation_filter.as_params(),
        "participants": len(scope.people),
        "generated_at": timezone.now().isoformat(),
    }
    book = codebook_dict(study=study, tables=tables, counts=counts, meta=meta)
    (out_dir / "codebook.json").write_text(codebook_json(book), encoding="utf-8")
    (out_dir / "codebook.md").write_text(codebook_markdown(book), encoding="utf-8")
    files += [out_dir / "codebook.json", out_dir / "codebook.md"]
    progress(total, total, f"done: {len(scope.people)} participants")
    return ExportResult(directory=out_dir, files=files, counts=counts)
