"""The scheduler's queue and slots for ``/metrics``, read from the arbiter's state at each scrape.

Only the arbiter knows who waits and which slots are busy, and it may move to
another worker (with Redis, to another instance). So no worker keeps these
values: each scrape asks the arbiter (``Admission.status``, bounded by
``scheduling.status_timeout``) and turns its answer into gauges here, pure.
Instances that share a Redis share one scheduler, and each shows its whole
state: aggregate them with max(), not sum(). The scheduler keeps models as requests name
them: each is shown under its label (``metric_labels``), a name no backend lists as ``other``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

UP_HELP = ("1 if the scheduler answered this scrape within scheduling.status_timeout, 0 if not "
           "(its queue and slots are then left out)")
DEPTH_HELP = ("Requests waiting now that may run on this server, by model: one that several servers may serve "
              "counts on each of them")
SLOTS_HELP = ("Requests the server runs at once over all its models: num_parallel x max_loaded_models, "
              "or max_concurrent")
BUSY_HELP = "Requests running now on a model loaded on the server (at most its num_parallel)"
LENT_HELP = ("Free slots of a model on the server lent to the proxy's workers, which start requests on them "
             "without asking while nothing waits; called back the moment anything does")
# What the scheduler's mirror of each server's prompt cache predicted, and what the answers confirmed (``hits``),
# since the arbiter took office: a new arbiter starts them again, as any counter after a restart.
HITS = (("predicted", "ollama_proxy_prompt_cache_predicted_hits",
         "Requests the scheduler expected to read most of their prompt from the server's cache"),
        ("confirmed", "ollama_proxy_prompt_cache_confirmed_hits",
         "Of those, the ones whose answer bore it out: its prompt_eval_cached_count where sent (no Ollama "
         "release up to 0.33 sends it), else what its prompt_eval_duration says was read again"),
        ("predicted_tokens", "ollama_proxy_prompt_cache_predicted_tokens",
         "Prompt tokens the scheduler expected the server to read from its cache"),
        ("confirmed_tokens", "ollama_proxy_prompt_cache_confirmed_tokens",
         "Of those, the tokens the answers bore out (said, or inferred from prompt_eval_duration)"))


def families(status: dict | None, model_label: Callable[[str], str] = str) -> list[GaugeMetricFamily]:
    """Return the scheduler's gauges for a ``snapshot`` (None: the scheduler did not answer).

    ``model_label`` turns a model's name into its label (``metric_labels``); names that share one are added up.
    """
    up = GaugeMetricFamily("ollama_proxy_scheduler_up", UP_HELP, value=0 if status is None else 1)
    if status is None:
        return [up]
    depth = GaugeMetricFamily("ollama_proxy_scheduler_queue_depth", DEPTH_HELP, labels=["server", "model"])
    for labels, waiting in sorted(_relabelled(queue_depths(status), model_label).items()):
        depth.add_metric(list(labels), waiting)
    slots = GaugeMetricFamily("ollama_proxy_scheduler_slots", SLOTS_HELP, labels=["server"])
    busy = GaugeMetricFamily("ollama_proxy_scheduler_slots_busy", BUSY_HELP, labels=["server", "model"])
    lent = GaugeMetricFamily("ollama_proxy_scheduler_slots_lent", LENT_HELP, labels=["server", "model"])
    for server in status["servers"]:
        slots.add_metric([server["name"]], server["slots"])
    for family, field in ((busy, "busy"), (lent, "lent")):
        runners = {(server["name"], runner["model"]): runner[field]
                   for server in status["servers"] for runner in server["models"]}
        for labels, value in _relabelled(runners, model_label).items():
            family.add_metric(list(labels), value)
    return [up, depth, slots, busy, lent, *_hits(status.get("prompt_cache", ()), model_label)]


def _hits(reports: list[dict], model_label: Callable[[str], str]) -> list[CounterMetricFamily]:
    """The mirror's predicted and confirmed prompt cache hits, per server and model label."""
    made = []
    for field, name, help_text in HITS:
        family = CounterMetricFamily(name, help_text, labels=["server", "model"])
        values = {(report["server"], report["model"]): report[field] for report in reports}
        for labels, value in sorted(_relabelled(values, model_label).items()):
            family.add_metric(list(labels), value)
        made.append(family)
    return made


def _relabelled(values: dict[tuple[str, str], int], model_label: Callable[[str], str]) -> dict[tuple[str, str], int]:
    """Add up the values of (server, model) by (server, the model's label)."""
    summed: dict[tuple[str, str], int] = {}
    for (server, model), value in values.items():
        key = (server, model_label(model))
        summed[key] = summed.get(key, 0) + value
    return summed


def queue_depths(status: dict) -> dict[tuple[str, str], int]:
    """Count the waiting requests per (server, model) they may run on; a loaded model none waits for counts 0."""
    depths = {(server["name"], runner["model"]): 0 for server in status["servers"] for runner in server["models"]}
    for waiting in status["waiting"]:
        for server in waiting["servers"]:
            key = (server, waiting["model"])
            depths[key] = depths.get(key, 0) + 1
    return depths


class _Families:
    """A collector of families made already (prometheus_client registers collectors, not families)."""

    def __init__(self, made: list[GaugeMetricFamily]) -> None:
        self._made = made

    def collect(self) -> list[GaugeMetricFamily]:
        return self._made


def exposition(status: dict | None, model_label: Callable[[str], str] = str) -> bytes:
    """Return the scheduler's gauges in Prometheus' text format, each model under its label."""
    registry = CollectorRegistry()
    registry.register(_Families(families(status, model_label)))
    return generate_latest(registry)
