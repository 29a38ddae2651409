"""Command-line options for the analysis population, shared by the export commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from studyapp.dashboards.filters import VIEWS, ParticipationFilter


def add_filter_arguments(parser) -> None:
    group = parser.add_argument_group("population (the same filters as the dashboard)")
    group.add_argument(
        "--view", choices=VIEWS, default="completers",
        help="completers (default) or itt: everyone assigned to an arm (available-case)",
    )
    # Not --version: Django's commands already use it for their own version.
    group.add_argument(
        "--study-version", type=int, default=None,
        help="only participants of this study version (default: every version, pooled)",
    )
    group.add_argument(
        "--include-test", action="store_true", help="include pilot and researcher test runs"
    )
    simulated = group.add_mutually_exclusive_group()
    simulated.add_argument(
        "--include-simulated", action="store_true",
        help="include simulated participants (simulate_participants)",
    )
    simulated.add_argument(
        "--only-simulated", action="store_true", help="simulated participants only"
    )
    group.add_argument(
        "--include-failed-attention", action="store_true",
        help="include participants who failed the attention check",
    )


def filter_from_options(options: dict) -> ParticipationFilter:
    try:
        return ParticipationFilter.from_params(
            {
                "view": options["view"],
                "include_test": "1" if options["include_test"] else "0",
                "include_failed_attention": "1" if options["include_failed_attention"] else "0",
                "simulated": "only" if options.get("only_simulated")
                else "include" if options.get("include_simulated") else "exclude",
                "version": options.get("study_version"),
            }
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
