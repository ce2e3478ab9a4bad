"""Make the options that force Ollama to reload a model take one value per model and server.

Ollama reloads a loaded model when a request's runner options differ from
those it was loaded with (``needsReload`` in its scheduler): the context
length, batch size, GPU layers, main GPU, memory mapping and threads. Three
clients asking 2048, 8192 and nothing for one model would reload it on every
switch. Here a request asking less than the loaded value, or nothing, gets the
loaded value; one asking more reloads it once, to the larger value, which then
stays. A value a per-model ``enforce`` fixed is sent as the policy set it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

RELOAD_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")


def reload_options(options: Mapping | None) -> dict:
    """Return the reload options a request's ``options`` set (the others do not make Ollama reload)."""
    if not options or not isinstance(options, Mapping):
        return {}
    return {name: options[name] for name in RELOAD_OPTIONS if name in options and options[name] is not None}


def unify(loaded: Mapping | None, asked: Mapping, enforced: Collection[str] = ()) -> tuple[dict, bool]:
    """Return the reload options to send, and whether sending them makes the server reload.

    ``loaded`` is what the model runs with on the server (None: not loaded);
    ``asked`` the request's reload options; ``enforced`` the names a per-model
    override fixed.
    """
    if loaded is None:
        return dict(asked), False
    unified = dict(loaded)
    for name, value in asked.items():
        current = loaded.get(name)
        if name in enforced or current is None or _larger(value, current):
            unified[name] = value
    return unified, unified != dict(loaded)


def _larger(value, current) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, current))
    return numbers and value > current
