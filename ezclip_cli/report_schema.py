"""The evaluation report's JSON schema and its validator (docs/report_schema.json is a copy, checked by the tests)."""

from __future__ import annotations

import math
from typing import Any

from ezclip_cli.eval_config import PROTOCOLS, REPORT_FORMAT, REPORT_VERSION

# ---- the report schema (docs/report_schema.json is a copy, checked by the tests) ----------------------
_NUM_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_STAT = {
    "type": "object",
    "required": ["mean", "std", "values"],
    "additionalProperties": False,
    "properties": {
        "mean": _NUM_OR_NULL,
        "std": {"type": ["number", "null"], "minimum": 0},
        "values": {"type": "array", "items": {"type": "number"}},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "report_schema.json",
    "title": "ezclip eval report",
    "description": "Written by `ezclip eval` to OUT/report.json. Accuracies are fractions in [0, 1] whose "
    "denominators are the scored videos; top5 is top-min(5, K) for K classes; unreadable videos are failures "
    "(listed, counted, in no denominator); 'dropped' counts videos left unscored by --faithful's drop_last; std is the "
    "population standard deviation over units and runs.",
    "type": "object",
    "required": [
        "format",
        "format_version",
        "ezclip_version",
        "protocol",
        "dataset",
        "root",
        "faithful",
        "notes",
        "config",
        "run",
        "splits",
        "models",
        "evaluations",
        "summary",
        "counts",
        "failures",
        "plots",
    ],
    "additionalProperties": False,
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "format_version": {"const": REPORT_VERSION},
        "ezclip_version": {"type": "string"},
        "protocol": {"enum": list(PROTOCOLS)},
        "dataset": {"type": "string"},
        "root": {"type": "string"},
        "faithful": {"type": "boolean", "description": "true: the reference's protocol choices (docs/model.md 9)"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "config": {
            "type": "object",
            "description": "EvalConfig: the options of the run",
            "required": ["protocol", "dataset", "clips", "crops", "batch_size", "faithful"],
        },
        "run": {
            "type": "object",
            "required": ["world_size"],
            "properties": {"world_size": {"type": "integer", "minimum": 1}},
        },
        "splits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["unit", "split", "fold", "part", "num_classes", "videos", "missing_in_split"],
                "properties": {
                    "unit": {"type": "string"},
                    "split": {"type": "string"},
                    "fold": {"type": ["integer", "null"]},
                    "part": {"enum": ["base", "novel", None]},
                    "num_classes": {"type": "integer", "minimum": 1},
                    "videos": _COUNT,
                    "missing_in_split": _COUNT,
                },
            },
        },
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "kind",
                    "group",
                    "checkpoint",
                    "shots",
                    "seed",
                    "fingerprint",
                    "backbone",
                    "num_frames",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"enum": ["ezclip", "clip"]},
                    "group": {"type": "string"},
                    "checkpoint": {"type": ["string", "null"]},
                    "shots": {"type": ["integer", "null"]},
                    "seed": {"type": ["integer", "null"]},
                    "fingerprint": {"type": "string", "description": "loading.model_fingerprint"},
                    "backbone": {"type": "string"},
                    "pretrained": {"type": ["string", "null"]},
                    "num_frames": {"type": "integer", "minimum": 1},
                    "image_size": {"type": "integer"},
                    "use_prompts": {"type": "boolean"},
                },
            },
        },
        "evaluations": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/evaluation"}},
        "summary": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["group", "kind", "shots", "models", "metrics", "harmonic_mean_of_means", "gain_over_clip"],
                "properties": {
                    "group": {"type": "string"},
                    "kind": {"enum": ["ezclip", "clip"]},
                    "shots": {"type": ["integer", "null"]},
                    "models": {"type": "array", "items": {"type": "string"}},
                    "metrics": {
                        "type": "object",
                        "description": "top1/top5/mean_class_accuracy, or for base-to-novel "
                        "base_top1/novel_top1/harmonic_mean (per run)",
                        "additionalProperties": {"$ref": "#/$defs/stat"},
                    },
                    "harmonic_mean_of_means": {
                        "type": ["number", "null"],
                        "description": "base-to-novel: HM of the mean base and mean novel top-1",
                    },
                    "gain_over_clip": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": "number"},
                        "description": "mean minus the frozen CLIP baseline's mean, per metric",
                    },
                },
            },
        },
        "counts": {
            "type": "object",
            "additionalProperties": False,
            "required": ["evaluated", "scored", "failed", "dropped", "unreadable_videos"],
            "properties": {k: _COUNT for k in ("evaluated", "scored", "failed", "dropped", "unreadable_videos")},
        },
        "failures": {"type": "array", "items": {"$ref": "#/$defs/failure"}},
        "plots": {"type": "array", "items": {"type": "string"}},
    },
    "$defs": {
        "stat": _STAT,
        "failure": {
            "type": "object",
            "required": ["path", "error"],
            "additionalProperties": False,
            "properties": {"path": {"type": "string"}, "error": {"type": "string"}},
        },
        "evaluation": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "model",
                "unit",
                "split",
                "fold",
                "part",
                "num_classes",
                "videos",
                "scored",
                "failed",
                "dropped",
                "metrics",
                "per_class",
                "confusion",
                "failures",
            ],
            "properties": {
                "model": {"type": "string"},
                "unit": {"type": "string"},
                "split": {"type": "string"},
                "fold": {"type": ["integer", "null"]},
                "part": {"enum": ["base", "novel", None]},
                "num_classes": {"type": "integer", "minimum": 1},
                "videos": _COUNT,
                "scored": _COUNT,
                "failed": _COUNT,
                "dropped": _COUNT,
                "metrics": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["top1", "top5", "mean_class_accuracy"],
                    "properties": {"top1": _NUM_OR_NULL, "top5": _NUM_OR_NULL, "mean_class_accuracy": _NUM_OR_NULL},
                },
                "per_class": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["class", "videos", "correct", "accuracy"],
                        "properties": {
                            "class": {"type": "string"},
                            "videos": _COUNT,
                            "correct": _COUNT,
                            "accuracy": _NUM_OR_NULL,
                            "text": {"enum": ["description", "templates"]},
                        },
                    },
                },
                "confusion": {
                    "type": "array",
                    "description": "rows: true class, columns: top-1 prediction",
                    "items": {"type": "array", "items": _COUNT},
                },
                "failures": {"type": "array", "items": {"$ref": "#/$defs/failure"}},
            },
        },
    },
}


def validate_report(report: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Errors of `report` against the report schema ([] = valid).

    A small validator for the JSON Schema keywords the schema uses: type, const, enum,
    minimum, maximum, required, properties, additionalProperties, items, minItems, $ref.
    """
    schema = REPORT_SCHEMA if schema is None else schema
    errors: list[str] = []
    _validate(report, schema, schema, "$", errors)
    return errors


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str, errors: list[str]) -> None:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_TYPES[t](value) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}: missing '{key}'")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], root, f"{where}.{key}", errors)
            elif extra is False:
                errors.append(f"{where}: unexpected '{key}'")
            elif isinstance(extra, dict):
                _validate(item, extra, root, f"{where}.{key}", errors)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{where}[{i}]", errors)
