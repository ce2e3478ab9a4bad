"""gunicorn settings for Ollama Proxy: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Every value can be changed from the environment (for systemd's EnvironmentFile)
or by gunicorn's own command-line flags, which win over this file.
"""

import multiprocessing
import os
import signal


def _env(name, default, kind=str):
    return kind(os.environ.get(name, default))


bind = _env("OLLAMA_PROXY_BIND", "127.0.0.1:8080")
# gevent: one worker holds thousands of idle streams; the work per chunk is small.
worker_class = "ollama_proxy.worker.GeventWorker"
workers = _env("OLLAMA_PROXY_WORKERS", min(multiprocessing.cpu_count(), 4), int)
worker_connections = _env("OLLAMA_PROXY_WORKER_CONNECTIONS", 2000, int)
# For gevent workers this is a heartbeat, not a request limit: a stream may last an hour.
timeout = _env("OLLAMA_PROXY_WORKER_TIMEOUT", 60, int)
# On SIGTERM or SIGHUP, running streams get this long to finish.
graceful_timeout = _env("OLLAMA_PROXY_GRACEFUL_TIMEOUT", 120, int)
# Seconds an idle keep-alive connection is kept. Short, because a stopping worker waits
# for idle connections too; nginx's upstream keepalive_timeout must be shorter still.
keepalive = _env("OLLAMA_PROXY_KEEPALIVE", 5, int)
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 16380
# The proxy writes its own access log under logs/; gunicorn's errors go to stderr (journald).
accesslog = None
errorlog = "-"
loglevel = _env("OLLAMA_PROXY_GUNICORN_LOG_LEVEL", "info")
proc_name = "ollama-proxy"
# Trust X-Forwarded-* only from a proxy on this host (nginx).
forwarded_allow_ips = _env("OLLAMA_PROXY_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn 27's control socket is not used: HUP reloads, TERM stops (see the systemd unit).
control_socket_disable = _env("OLLAMA_PROXY_CONTROL_SOCKET", "off") == "off"
# Allocations between two collections of the garbage collector's youngest generation (Python's default:
# 700). Every chunk of every open stream allocates; at the default, a worker holding 1,000 streams runs a
# collection of its middle generation (up to 30 ms, every stream waits) about twice a second.
gc_young_threshold = _env("OLLAMA_PROXY_GC_THRESHOLD", 50_000, int)
# New connections a worker takes from the listening socket each turn of its event loop, with one worker or
# several (gunicorn's own: 1 with several, gevent's 100 with one). A turn of a saturated worker lasts tens of
# milliseconds; at one a turn, a burst of new clients waits seconds to be taken. More a turn starts them
# sooner, but a worker may take more than its share.
accept_per_turn = _env("OLLAMA_PROXY_ACCEPT_PER_TURN", 8, int)
# Seconds the check before a start or reload (the code on disk built, the store migrated) may take; past it,
# the reload is refused. A migration of a large store takes longest.
reload_check_timeout = _env("OLLAMA_PROXY_RELOAD_CHECK_TIMEOUT", 300, float)
if accept_per_turn < 1:
    raise SystemExit(f"OLLAMA_PROXY_ACCEPT_PER_TURN is {accept_per_turn}: a worker takes at least 1 connection a turn")


# Metrics: every worker writes its values to files in one directory, which /metrics adds up.
# PROMETHEUS_MULTIPROC_DIR names it; without it, each start gets a new temporary directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server):
    """Prepare the metrics directory, then migrate the store, before any worker starts."""
    from ollama_proxy.observability import multiproc

    # First: prometheus_client reads the variable when it is imported, in the workers.
    os.environ[MULTIPROC_ENV] = multiproc.prepare(os.environ.get(MULTIPROC_ENV))
    try:
        prepared = _prepare_in_a_child(server, build_app=False)  # the workers build the app, and stop if it fails
    except ReloadRefused as exc:
        if exc.stage == "config":
            return  # the workers stop on it, naming the key
        raise RuntimeError(f"the store could not be opened and migrated: {exc}") from None
    _note_shared_scheduler(prepared)
    if not prepared["admin_enabled"]:  # said once here, not by every worker at every (re)start
        server.log.warning("the admin page is off: set admin.password_hash to the output of "
                           "`ollama-proxy admin-password`, or admin.oidc (docs/oidc.md), to turn it on")


def when_ready(server):
    """Check every reload before gunicorn begins it (SIGHUP, ``systemctl reload``).

    gunicorn has no hook that can refuse a reload: by on_reload the new workers are decided, and
    the old ones are sent TERM as soon as the new ones are forked, before they have loaded the
    app. New code that cannot serve (a migration that fails, a store newer than the code, an app
    that does not build) would stop every worker, and gunicorn with them. So the reload itself
    is wrapped: the code on disk is made ready first, and a refusal leaves the workers serving.
    """
    reload = server.reload

    def checked_reload():
        try:
            server.ollama_proxy_prepared = _prepare_in_a_child(server, build_app=True)
        except ReloadRefused as exc:
            server.log.error("reload refused, the running workers go on serving the code they run: %s", exc)
            return
        reload()

    server.reload = checked_reload


def on_reload(server):
    """SIGHUP, checked: the new workers run the code on disk, worker class included."""
    prepared = server.__dict__.pop("ollama_proxy_prepared", None)  # None: a reload that bypassed the check
    _note_shared_scheduler(prepared or _prepare_in_a_child(server, build_app=True))
    _forget_project_modules()
    # Imported afresh: gunicorn made the worker objects in the master, from the class it holds.
    server.worker_class = server.cfg.worker_class


def post_fork(server, worker):
    """A new worker imports the app from disk, none of what the master imported (a newer release may be there)."""
    _keep_early_stop_signals(worker)
    _forget_project_modules()


def _keep_early_stop_signals(worker):
    """Keep the stop signals a new worker gets before it sets its own handlers; it takes them then (worker.py).

    Until then it runs the handler it inherited from the master, which puts the signal in this process's copy of
    the master's queue, where nothing reads it: a stop or a reload while a worker booted (after one died, say)
    was lost on it, and the master waited out graceful_timeout (120 s) for a worker that never heard it.
    """
    worker.early_signals = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, lambda signum, frame: worker.early_signals.append(signum))


class ReloadRefused(Exception):
    """The code on disk cannot serve; ``stage`` says where it failed (config, store, app, code)."""

    def __init__(self, reason, stage):
        super().__init__(reason)
        self.stage = stage


def _forget_project_modules():
    """Drop this process's modules of the project, so the next import reads the code on disk."""
    import sys

    for name in [name for name in sys.modules if name == "ollama_proxy" or name.startswith("ollama_proxy.")]:
        del sys.modules[name]


# The Redis URL through which instances share a scheduler, or None: only then does child_exit
# have a worker's slots to free.
_shared_scheduler_url = None


def _note_shared_scheduler(prepared):
    global _shared_scheduler_url
    _shared_scheduler_url = prepared["redis_url"]


def _prepare_in_a_child(server, build_app):
    """Make the code on disk ready to serve (ollama_proxy.upgrade.prepare) in a forked child; return what it says.

    The master keeps no module of the project for itself: whatever it imported would stay for good,
    and every worker forked from it would run that beside the newer code on disk (an upgrade's
    reload once stopped every new worker that way). Nor does it load the database libraries,
    which would weigh tens of megabytes in it for the service's life.
    """
    import json
    import select
    import signal
    import sys

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            answer = _prepare_here(server.cfg.config, server.cfg.worker_class_str, build_app)
            with os.fdopen(write_end, "w") as out:
                json.dump(answer, out)
            sys.stderr.flush()
        finally:
            os._exit(0)  # never back into the master's loop
    os.close(write_end)
    with os.fdopen(read_end) as answer_pipe:
        answered = select.select([answer_pipe], [], [], reload_check_timeout)[0]
        said = answer_pipe.read() if answered else ""
    if not answered:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    answer = json.loads(said) if said else {"refused": "the check died before it answered" if answered else (
        f"the check took longer than {reload_check_timeout:g} s (OLLAMA_PROXY_RELOAD_CHECK_TIMEOUT)"), "stage": "code"}
    if "refused" in answer:
        raise ReloadRefused(answer["refused"], answer["stage"])
    return answer["prepared"]


def _prepare_here(gunicorn_conf, worker_class, build_app):
    """Read this file and the worker class as the reload will, then prepare the project's code on disk."""
    import runpy
    import traceback

    try:
        if gunicorn_conf:
            runpy.run_path(gunicorn_conf)  # gunicorn exits on a file it cannot read again
        _forget_project_modules()
        from gunicorn.util import load_class

        from ollama_proxy.upgrade import Refused, prepare

        try:
            load_class(worker_class)
            return {"prepared": prepare(build_app).as_dict()}
        except Refused as exc:
            return {"refused": str(exc), "stage": exc.stage}
    except BaseException as exc:  # new code that does not even import: said in full, in the journal
        traceback.print_exc()
        return {"refused": f"{type(exc).__name__}: {exc}", "stage": "code"}


def post_worker_init(worker):
    """Prepare a worker with its app loaded: no greenlet bookkeeping, a frozen heap collected less often, a place
    in the scheduler, its loop of membership re-checks.

    What loading the app made moves out of the garbage collector's reach.
    Those objects live as long as the worker; without this, every full
    collection walks all of them again, a pause of tens of milliseconds that
    every stream of the worker waits out.
    """
    import gc

    import gevent

    # gevent keeps, for each greenlet, the stack that spawned it, for debugging tools the proxy does not
    # use: kilobytes and microseconds for every stream.
    gevent.config.track_greenlet_tree = False
    gc.freeze()
    gc.set_threshold(gc_young_threshold, *gc.get_threshold()[1:])
    worker.accept_per_turn = accept_per_turn
    # Join the scheduler (and stand for its arbiter) now: the first request finds it ready.
    admission = _admission(worker)
    if admission is not None:
        admission.stand()
    # Re-check the membership of key owners at the identity provider, if it signs people in (docs/oidc.md).
    from ollama_proxy.identity import recheck_loop

    recheck_loop.start(getattr(worker, "wsgi", None))
    # Read each Ollama server's models now, in the background: /health and the Backends page know them at once.
    from ollama_proxy.backends.pool import learn_models

    learn_models(getattr(worker, "wsgi", None))


def worker_exit(server, worker):
    """Stop deciding who runs next, if this worker does: another takes over at once, told what runs."""
    admission = _admission(worker)
    if admission is not None:
        admission.resign()


def _admission(worker):
    dispatcher = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("ollama_proxy.dispatcher")
    return getattr(dispatcher, "admission", None)


def child_exit(server, worker):
    """Stop counting an exited worker's in-flight responses (its counts stay in the sums); free its slots."""
    from ollama_proxy.observability import multiproc

    multiproc.worker_exited(os.environ[MULTIPROC_ENV], worker.pid)
    _forget_in_the_shared_scheduler(worker.pid)


def _forget_in_the_shared_scheduler(pid):
    """Tell the scheduler that instances share through Redis (if they do) that a worker exited.

    Its slots are free at once, not after its lease lapses. The master never imports redis and never
    waits on the network: a forked child forks the one that does it and exits at once, so the master
    has no extra child beside its workers for longer than a moment.
    """
    url, master = _shared_scheduler_url, os.getpid()
    if url is None:
        return
    child = os.fork()
    if child != 0:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:  # reaped by gunicorn's own waitpid(-1) already
            pass
        return
    status = 0
    try:
        if os.fork() == 0:
            _forget_project_modules()
            from ollama_proxy.scheduler.transport.shared import forget_worker

            forget_worker(url, master, pid)
    except Exception:  # the lease lapses in its time anyway
        status = 1
    finally:
        os._exit(status)
