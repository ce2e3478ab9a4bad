"""Make the options that force Ollama to reload a model take one value per model and server.

Ollama 0.33 reloads a loaded model when a request's runner options are not
exactly those it was loaded with (``needsReload`` in ``server/sched.go``
compares ``api.Runner`` with ``reflect.DeepEqual``): the context length, batch
size, GPU layers, main GPU, memory mapping and threads. Smaller differs as much
as larger, and a request that names no ``num_ctx`` gets the server's default
(``OLLAMA_CONTEXT_LENGTH``, else 4096, 32768 or 262144 by VRAM), which differs
from an explicit value the model was loaded with. Three clients asking 2048, 8192
and nothing for one model would reload it on every switch.

So the proxy decides the values itself. A model loads with the largest value
asked for it on that server so far (``largest``), sent to every request,
including those that asked less or nothing; a request asking less than the loaded
value, or nothing, is sent the loaded value; one asking more reloads it once, to
the largest asked, which then stays. A value a per-model ``enforce`` fixed is sent
as the policy set it, and is not remembered.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

RELOAD_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


def reload_options(options: Mapping | None) -> dict:
    """Return the reload options a request's ``options`` set (the others do not make Ollama reload)."""
    if not options or not isinstance(options, Mapping):
        return {}
    return {name: options[name] for name in RELOAD_OPTIONS if name in options and options[name] is not None}


def unify(loaded: Mapping | None, asked: Mapping, enforced: Collection[str] = (),
          chosen: Mapping | None = None) -> tuple[dict, bool]:
    """Return the reload options to send, and whether sending them makes the server reload.

    ``loaded`` is what the model runs with on the server (None: not loaded);
    ``asked`` the request's reload options; ``enforced`` the names a per-model
    override fixed; ``chosen`` the values decided for the model on the server so
    far (``largest``), which a load or reload takes where they are larger than
    asked. A loaded value not known (the model was loaded without it: Ollama's
    default, until ``/api/ps`` says) is kept for a request that asks none.
    """
    if loaded is None:
        return _widened(asked, chosen, enforced), False
    unified = dict(loaded)
    for name, value in asked.items():
        current = loaded.get(name)
        if name in enforced or current is None or _larger(value, current):
            unified[name] = value
    if unified == dict(loaded):
        return unified, False
    return _widened(unified, chosen, enforced), True


def within_training(asked: Mapping, train_ctx: int | None) -> Mapping:
    """``asked`` with a ``num_ctx`` past the model's training context brought down to it, as Ollama compares it
    (``effectiveContext`` in ``needsReload``): a larger one reloads nothing there."""
    value = asked.get("num_ctx")
    if train_ctx is None or not _number(value) or value <= train_ctx:
        return asked
    return {**asked, "num_ctx": train_ctx}


def largest(chosen: Mapping | None, asked: Mapping, enforced: Collection[str] = ()) -> dict:
    """Return ``chosen`` with each number ``asked`` (not ``enforced``) that is larger, or new, put in."""
    kept = dict(chosen or {})
    for name, value in asked.items():
        if name not in enforced and _number(value) and (name not in kept or _larger(value, kept[name])):
            kept[name] = value
    return kept


def _widened(options: Mapping, chosen: Mapping | None, enforced: Collection[str]) -> dict:
    """Return ``options`` with each ``chosen`` value that is larger, or unset, put in (an enforced one stays)."""
    widened = dict(options)
    for name, value in (chosen or {}).items():
        if name not in enforced and (name not in widened or _larger(value, widened[name])):
            widened[name] = value
    return widened


def num_ctx_of(options: Mapping) -> float | None:
    """The context ``options`` give a slot (``num_ctx``), if they name one that can be; None if not."""
    value = options.get("num_ctx")
    return value if _number(value) and value > 0 else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _larger(value, current) -> bool:
    return _number(value) and _number(current) and value > current
