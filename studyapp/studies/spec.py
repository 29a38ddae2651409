"""Parsing and validating study files.

A study file is YAML (see deploy/studies/). ``parse_study_file`` returns the normalised spec that
is frozen into a StudyVersion; helpers here read that spec so callers never index raw dicts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml
from django.conf import settings

# Relative prompt_file paths in a study file are read from here.
STUDY_FILES_DIR = settings.BASE_DIR / "deploy" / "studies"

BACKENDS = frozenset({"openai", "transformers", "offline"})
ASSIGNMENT_METHODS = frozenset({"permuted_blocks", "least_filled"})
DEFAULT_CODES = {
    "completed": "COMPLETED",
    "declined": "NOCONSENT",
    "failed_attention": "FAILATTN",
    "timed_out": "TIMEDOUT",
    # The model could not answer (studyapp/writing/services.py, turn_failure_settle).
    "technical_problem": "TECHPROB",
}


class StudySpecError(ValueError):
    """The study file is not valid; the message says where."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise StudySpecError(message)


def _whole(value: Any, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def parse_study_file(text: str, *, offline: bool = False) -> dict[str, Any]:
    """The normalised spec of ``text``; ``offline`` turns every arm into the offline backend
    first (the demo), so that an arm is checked as it will run."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudySpecError(f"not valid YAML: {exc}") from exc
    _require(isinstance(raw, dict), "a study file must be a mapping")
    return normalise(raw, offline=offline)


def normalise(raw: dict[str, Any], *, offline: bool = False) -> dict[str, Any]:
    spec = dict(raw)
    _require(bool(spec.get("slug")), "slug is required")
    spec.setdefault("title", spec["slug"])
    spec.setdefault("description", "")
    spec.setdefault("allow_pilot", False)
    # Off only for a panel that sends Prolific-style links with ids of another shape.
    spec["entry"] = {"strict_prolific_ids": True, **(spec.get("entry") or {})}
    spec["consent"] = _consent(spec.get("consent") or {})
    spec["conditions"] = _conditions(spec.get("conditions") or [], offline=offline)
    spec["model_context"] = _model_context(spec.get("model_context"))
    spec["assignment"] = _assignment(spec.get("assignment") or {})
    spec["document_types"] = _document_types(spec.get("document_types") or [])
    spec["prewriting"] = {
        "min_answers": 1,
        "max_answer_chars": 1000,
        **(spec.get("prewriting") or {}),
    }
    spec["writing"] = _writing(spec.get("writing") or {})
    spec["scales"] = _scales(spec.get("scales") or {})
    spec["survey"] = _survey(spec.get("survey") or {})
    spec["completion_codes"] = {**DEFAULT_CODES, **(spec.get("completion_codes") or {})}
    spec["limits"] = {
        "session_minutes": 90,
        "idle_minutes": 30,
        "free_slot_on_timeout": True,
        "quota": None,
        # A consented participant who has not begun writing holds a quota place this long...
        "consent_hold_minutes": 15,
        # The writing page warns this long before each limit (0: no warning).
        "session_warning_minutes": 10,
        "idle_warning_minutes": 5,
        # ...and only while their page shows a sign of life this recently (0: no such rule).
        "consent_presence_seconds": 120,
        **(spec.get("limits") or {}),
    }
    for key in ("session_warning_minutes", "idle_warning_minutes"):
        value = spec["limits"][key]
        number = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        _require(number, f"limits.{key} must be a number of minutes >= 0")
    spec["bonus"] = {"per_completion": 0.0, **(spec.get("bonus") or {})}
    spec["simulation"] = _simulation(spec.get("simulation") or {}, offline=offline)
    spec["side_by_side"] = _side_by_side(spec.get("side_by_side") or {}, spec["conditions"])
    spec["exclusion_reasons"] = _exclusion_reasons(spec.get("exclusion_reasons"))
    spec["preregistration"] = _preregistration(spec.get("preregistration"), spec["conditions"])
    return spec


def _consent(consent: dict[str, Any]) -> dict[str, Any]:
    _require(bool(consent.get("text")), "consent.text is required")
    boxes = consent.get("checkboxes") or []
    _require(all(isinstance(b, str) and b for b in boxes), "consent.checkboxes must be strings")
    return {"text": consent["text"], "checkboxes": boxes}


def _conditions(conditions: list[dict[str, Any]], *, offline: bool) -> list[dict[str, Any]]:
    _require(len(conditions) >= 1, "at least one condition is required")
    names = [c.get("name") for c in conditions]
    _require(all(names), "every condition needs a name")
    _require(len(set(names)) == len(names), "condition names must be unique")
    out = []
    for cond in conditions:
        backend = cond.get("backend", "openai")
        _require(backend in BACKENDS, f"condition {cond['name']}: unknown backend {backend!r}")
        weight = cond.get("weight", 1)
        _require(isinstance(weight, int) and weight > 0, f"condition {cond['name']}: weight > 0")
        out.append({**cond, "backend": backend, "weight": weight})
    if offline:
        from collab_models.arms import override_offline

        out = [override_offline(c) for c in out]
    for cond in out:
        _check_arm(cond)
    return out


def _check_arm(condition: dict[str, Any]) -> None:
    # Building an arm contacts nothing; it catches typos and bad sampling values at load time.
    from collab_models.arms import ConfigError, build_arm

    try:
        build_arm(condition, base_dir=STUDY_FILES_DIR)
    except ConfigError as exc:
        raise StudySpecError(str(exc)) from exc


# What the model sees besides its prompt (docs/protocol.md, "What the assistant sees"). Each
# level adds to the one before; the paper's study showed the model the chat only.
MODEL_CONTEXTS = ("chat", "chat+task", "chat+task+document")


def _model_context(value: Any) -> str:
    value = "chat" if value is None else value
    _require(value in MODEL_CONTEXTS, f"model_context must be one of {MODEL_CONTEXTS}")
    return str(value)


def model_context_has(spec: dict[str, Any], part: str) -> bool:
    """Whether the study shows the model ``part`` ("task" or "document") besides the chat."""
    return part in str(spec.get("model_context") or "chat").split("+")


# simulate_participants --simulator llm: the model that plays the participants, the authors'
# user-simulator prompt, and the rubric of its answers outside the chat.
SIMULATION_DEFAULTS: dict[str, Any] = {
    "simulator": None,  # a condition-like block (backend, endpoints, model, sampling)
    "prompt": "collabllm:user_simulator",
    "prompt_package_version": "0.0.8",
    "rubric": "simulator_rubric",  # a project prompt's name, or rubric_file
    "rubric_file": None,
    "terminal_signal": "[[TERMINATE CHAT]]",
}


def _simulation(simulation: dict[str, Any], *, offline: bool) -> dict[str, Any]:
    """The ``simulation`` block; ``offline`` (the demo) puts its model on the offline backend
    as it does the arms."""
    _require(isinstance(simulation, dict), "simulation must be a mapping")
    unknown = set(simulation) - set(SIMULATION_DEFAULTS)
    _require(not unknown, f"simulation: unknown keys {sorted(unknown)}")
    out = {**SIMULATION_DEFAULTS, **simulation}
    if out["simulator"] is not None:
        _require(isinstance(out["simulator"], dict), "simulation.simulator must be a mapping")
        block = {"name": "simulator", **out["simulator"]}
        if offline:
            from collab_models.arms import override_offline

            block = override_offline(block)
        _check_arm(block)
        out["simulator"] = {k: v for k, v in block.items() if k != "name"}
    return out


def _assignment(assignment: dict[str, Any]) -> dict[str, Any]:
    method = assignment.get("method", "permuted_blocks")
    _require(method in ASSIGNMENT_METHODS, f"assignment.method must be one of {ASSIGNMENT_METHODS}")
    return {"method": method, "active_window_minutes": 60, **assignment}


def _document_types(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    _require(len(types) >= 1, "at least one document type is required")
    for doc_type in types:
        _require(bool(doc_type.get("key")), "every document type needs a key")
        _require(len(doc_type.get("topics") or []) >= 1, f"{doc_type['key']}: topics required")
        doc_type.setdefault("label", doc_type["key"])
        doc_type.setdefault("questions", [])
    return types


def _writing(writing: dict[str, Any]) -> dict[str, Any]:
    merged = {
        "min_turns": 8,
        "max_turns": 30,
        "rating_every": 3,
        "instructions": "",
        # New samples the participant may ask for per reply (the Regenerate button); 0: none.
        "max_regenerations": 2,
        # A turn counts toward min_turns only when its message has this many words (and its
        # reply has text), so one-letter messages stopped at once cannot buy the minimum.
        "min_message_words": 2,
        # Finish needs a document of at least this many words (0: an empty one is accepted).
        "min_document_words": 1,
        # Failed replies to one turn (each already retried on failed connections and 5xx)
        # before the participant is sent on with the technical-problem code.
        "max_failed_replies": 3,
        **writing,
    }
    _require(merged["rating_every"] >= 1, "writing.rating_every must be >= 1")
    _require(merged["max_turns"] >= merged["min_turns"], "writing.max_turns < min_turns")
    _require(_whole(merged["max_failed_replies"], minimum=1), "writing.max_failed_replies >= 1")
    for key in ("max_regenerations", "min_message_words", "min_document_words"):
        _require(_whole(merged[key], minimum=0), f"writing.{key} must be a whole number >= 0")
    return merged


def _scales(scales: dict[str, Any]) -> dict[str, Any]:
    interaction = {
        "min": 1,
        "max": 10,
        "question": "How would you rate your interaction with the assistant so far?",
        "anchors": {},
        **(scales.get("interaction") or {}),
    }
    return {**scales, "interaction": interaction}


def _survey(survey: dict[str, Any]) -> dict[str, Any]:
    questions = survey.get("questions") or []
    for question in questions:
        _require(bool(question.get("key")), "every survey question needs a key")
        _require(
            question.get("kind") in {"scale", "text", "choice"}, "survey kind: scale|text|choice"
        )
    return {"questions": questions, "attention_check": survey.get("attention_check")}


SIDE_BY_SIDE_MODES = ("samples", "arms")


def _side_by_side(side: dict[str, Any], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    # At the listed turns the participant picks one of two candidate replies (DPO pairs).
    merged = {"turns": [], "mode": "samples", "arms": [], **side}
    turns = merged["turns"]
    _require(
        isinstance(turns, list) and all(_whole(t, minimum=1) for t in turns),
        "side_by_side.turns must be a list of user turns (whole numbers >= 1)",
    )
    mode = merged["mode"]
    _require(mode in SIDE_BY_SIDE_MODES, f"side_by_side.mode must be one of {SIDE_BY_SIDE_MODES}")
    if mode == "arms":
        arms = merged["arms"]
        names = {c["name"] for c in conditions}
        _require(
            isinstance(arms, list) and len(arms) == 2 and len(set(arms)) == 2,
            "side_by_side.arms must name two different conditions",
        )
        unknown = [a for a in arms if a not in names]
        _require(not unknown, f"side_by_side.arms: unknown conditions {unknown}")
    return merged


# Used when a study file names no reasons of its own.
DEFAULT_EXCLUSION_REASONS = (
    {"key": "failed_attention", "label": "Failed an attention check"},
    {"key": "low_effort", "label": "Low effort or off-task"},
    {"key": "duplicate", "label": "Took part more than once"},
    {"key": "technical_problem", "label": "Technical problem"},
)


def _exclusion_reasons(reasons: Any) -> list[dict[str, str]]:
    # The reasons a researcher may give for excluding a participation: keys or {key, label}.
    if reasons is None:
        return [dict(r) for r in DEFAULT_EXCLUSION_REASONS]
    _require(isinstance(reasons, list) and reasons, "exclusion_reasons must be a non-empty list")
    out = []
    for reason in reasons:
        entry = {"key": reason} if isinstance(reason, str) else reason
        _require(
            isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry["key"],
            "every exclusion reason needs a key",
        )
        out.append({"key": entry["key"], "label": str(entry.get("label") or entry["key"])})
    keys = [r["key"] for r in out]
    _require(len(set(keys)) == len(keys), "exclusion reason keys must be unique")
    return out


def exclusion_reasons(spec: dict[str, Any]) -> list[dict[str, str]]:
    """The study file's exclusion reasons (versions loaded before they existed get the defaults)."""
    return spec.get("exclusion_reasons") or [dict(r) for r in DEFAULT_EXCLUSION_REASONS]


def rating_turns(spec: dict[str, Any], turn: int) -> bool:
    """True when an interaction rating is due after the reply to user turn ``turn``."""
    return turn > 0 and turn % spec["writing"]["rating_every"] == 0


def document_type(spec: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((t for t in spec["document_types"] if t["key"] == key), None)


# --- pre-registration ------------------------------------------------------------------------

# The outcomes a pre-registration may name: the dashboards' outcome keys (a test keeps the two
# lists equal; this app sits below the dashboards and cannot import them).
PREREG_OUTCOMES = (
    "document_quality",
    "overall",
    "time_spent_min",
    "chat_time_min",
    "active_time_min",
    "interaction_mean",
)
PREREG_TESTS = ("welch", "mann_whitney")
# The omnibus test across the compared arms, declared beside the pairwise test (optional).
PREREG_OMNIBUS = ("kruskal_wallis", "anova", "welch_anova")
PREREG_CORRECTIONS = ("holm", "bonferroni", "none")
# failed_attention: attention_passed is false; researcher: a researcher excluded them.
PREREG_EXCLUSIONS = ("failed_attention", "researcher")
PREREG_POPULATIONS = ("completers", "itt")


def _preregistration(block: Any, conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``preregistration`` block, normalised (None: the study declares none)."""
    if block is None:
        return None
    _require(isinstance(block, dict), "preregistration must be a mapping")
    known = {"primary", "secondary", "test", "alpha", "correction", "exclusions",
             "target_n_per_arm", "comparisons", "population", "omnibus"}
    unknown = set(block) - known
    _require(not unknown, f"preregistration: unknown keys {sorted(unknown)}")
    primary = block.get("primary")
    _require(primary in PREREG_OUTCOMES,
             f"preregistration.primary must be one of {PREREG_OUTCOMES}")
    secondary = block.get("secondary") or []
    _require(
        isinstance(secondary, list) and all(o in PREREG_OUTCOMES for o in secondary),
        f"preregistration.secondary must list outcomes of {PREREG_OUTCOMES}",
    )
    _require(primary not in secondary and len(set(secondary)) == len(secondary),
             "preregistration.secondary repeats an outcome")
    test = block.get("test")
    _require(test in PREREG_TESTS, f"preregistration.test must be one of {PREREG_TESTS}")
    omnibus = block.get("omnibus")
    _require(omnibus is None or omnibus in PREREG_OMNIBUS,
             f"preregistration.omnibus must be one of {PREREG_OMNIBUS}")
    alpha = block.get("alpha", 0.05)
    _require(isinstance(alpha, float) and 0 < alpha < 1, "preregistration.alpha must be in (0, 1)")
    correction = block.get("correction", "holm")
    _require(correction in PREREG_CORRECTIONS,
             f"preregistration.correction must be one of {PREREG_CORRECTIONS}")
    exclusions = block.get("exclusions", list(PREREG_EXCLUSIONS))
    _require(isinstance(exclusions, list) and all(e in PREREG_EXCLUSIONS for e in exclusions),
             f"preregistration.exclusions must list rules of {PREREG_EXCLUSIONS}")
    target = block.get("target_n_per_arm")
    _require(_whole(target, minimum=2),
             "preregistration.target_n_per_arm must be a whole number >= 2")
    population = block.get("population", "completers")
    _require(population in PREREG_POPULATIONS,
             f"preregistration.population must be one of {PREREG_POPULATIONS}")
    names = [c["name"] for c in conditions]
    comparisons = block.get("comparisons") or [
        [a, b] for i, a in enumerate(names) for b in names[i + 1:]
    ]
    for pair in comparisons:
        _require(
            isinstance(pair, list) and len(pair) == 2 and pair[0] != pair[1]
            and all(arm in names for arm in pair),
            f"preregistration.comparisons: {pair!r} must name two different conditions",
        )
    normalised: dict[str, Any] = {
        "primary": primary,
        "secondary": list(secondary),
        "test": test,
        "alpha": float(alpha),
        "correction": correction,
        "exclusions": sorted(set(exclusions)),
        "target_n_per_arm": target,
        "population": population,
        "comparisons": [list(pair) for pair in comparisons],
    }
    if omnibus is not None:
        # Only when declared, so plans frozen before this key existed keep their hash.
        normalised["omnibus"] = omnibus
    return normalised


def preregistration(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The version's normalised pre-registration, or None."""
    return spec.get("preregistration") or None


def preregistration_hash(block: dict[str, Any] | None) -> str:
    """sha256 of the canonical JSON of a normalised block (sorted keys, no spaces); "" for none."""
    if not block:
        return ""
    canonical = json.dumps(block, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
