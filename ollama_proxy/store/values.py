"""Check the values a key and a team share (models, limits, weight, class) before they reach a table."""

from __future__ import annotations

from ollama_proxy.scheduler.decisions.fairness import CLASSES, MAX_WEIGHT
from ollama_proxy.store.errors import StoreError


def checked_share(fields: dict) -> dict:
    """Check (and normalise) whichever of models, rpm, tpm, weight and klass ``fields`` holds."""
    if "models" in fields:
        models = fields["models"] or ()
        if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
            raise StoreError("models must be a list of non-empty glob patterns")
        fields["models"] = list(models)
    for limit in ("rpm", "tpm"):
        value = fields.get(limit)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise StoreError(f"{limit} must be a positive whole number or none")
    if "weight" in fields:
        weight = fields["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_WEIGHT:
            raise StoreError(f"weight must be a number above 0, at most {MAX_WEIGHT:g}")
        fields["weight"] = float(weight)
    if "klass" in fields and fields["klass"] not in CLASSES:
        raise StoreError(f"class must be one of {', '.join(CLASSES)}")
    return fields
