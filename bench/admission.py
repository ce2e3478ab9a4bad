"""What asking the scheduler for a slot costs a request: ``python -m bench.admission``.

Two processes, as two gunicorn workers, share one instance's scheduler the way the proxy's do
(``LocalScheduler``: the first to take the lock is the arbiter). Each in turn admits and ends
requests (``--concurrency`` at a time; nothing ever waits: the server has slots to spare), timing
the round trip in the arbiter's own worker and then in the other one, with the CPU its worker spent
per request, and the CPU the other worker's requests cost the arbiter's worker. While nothing waits,
a worker starts requests on slots the arbiter lent it and tells the arbiter after (each of these
ends at once, so it is told of with the others that ran in the same 50 ms, ``REPORT_AFTER``): a
worker's time runs until the arbiter answers a status question and shows none of its requests
running. The arbiter's CPU is measured until both workers are done, so it counts every report.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket  # noqa: E402
from ollama_proxy.scheduler.decisions.fairness import Share  # noqa: E402
from ollama_proxy.scheduler.decisions.servers import ServerSpec  # noqa: E402
from ollama_proxy.scheduler.transport.local import LocalScheduler  # noqa: E402


def build() -> Scheduler:
    return Scheduler([ServerSpec("gpu", 100_000, 1_000, None)], Bounds())


def worker(lock: str, requests: int, concurrency: int, start, done, results, arbiter_first: bool) -> None:
    """Admit and end requests when ``start`` is set; put the figures in ``results``; stay until ``done``."""
    service = LocalScheduler(lock, build, max_wait=30.0)
    client = service.client()
    deadline = time.monotonic() + 10
    while (service.arbiter is None) == arbiter_first and time.monotonic() < deadline:
        gevent.sleep(0.01)  # the first worker becomes the arbiter before the second starts
    _wait(start)
    is_arbiter = service.arbiter is not None
    share = Share(f"worker-{os.getpid()}")

    def one() -> None:
        ticket = Ticket(uuid.uuid4().hex, share, "llama3.2", ("gpu",))
        client.admit(ticket)
        client.end(ticket.id)

    for _ in range(200):  # warm up: connect, and let the arbiter settle
        one()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    gevent.joinall([gevent.spawn(lambda: [one() for _ in range(requests // concurrency)])
                    for _ in range(concurrency)])
    while any(run["principal"] == share.principal for run in (client.status(30.0) or {"running": [{}]})["running"]):
        gevent.sleep(0.001)  # the arbiter has not heard of them all yet
    elapsed = time.perf_counter() - began
    used = resource.getrusage(resource.RUSAGE_SELF)
    results.put((is_arbiter, elapsed / requests, _cpu(used) - _cpu(cpu)))
    before = resource.getrusage(resource.RUSAGE_SELF)
    _wait(done)  # the arbiter stays until both have measured, deciding for the other
    if is_arbiter:
        results.put(_cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(before))


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def _wait(event) -> None:
    while not event.is_set():  # a multiprocessing wait would block this process's arbiter
        gevent.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests each worker admits (default 20000)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight in each worker")
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="ollama-proxy-admission-") as workdir:
        lock, done, results = os.path.join(workdir, ".scheduler.lock"), context.Event(), context.Queue()
        starts = [context.Event(), context.Event()]
        workers = [context.Process(target=worker,
                                   args=(lock, args.requests, args.concurrency, starts[i], done, results, i == 0))
                   for i in (0, 1)]
        workers[0].start()
        time.sleep(1.0)
        workers[1].start()
        time.sleep(1.0)
        for start in starts:  # one after the other: the arbiter's worker is otherwise idle, as at c=1
            start.set()
            is_arbiter, seconds, cpu = results.get(timeout=600)
            where = "the arbiter's worker" if is_arbiter else "another worker"
            print(f"{where:22}  {seconds * 1e6:8.1f} µs a request  "
                  f"{cpu / args.requests * 1e6:8.1f} µs CPU of its worker")
        done.set()
        arbiter_cpu = results.get(timeout=60) / (args.requests + 200)
        print(f"{'':22}  {'':19}  {arbiter_cpu * 1e6:8.1f} µs CPU of the arbiter's worker for each request "
              "of the other (with its warm-up and a second's idle)")
        for process in workers:
            process.join()


if __name__ == "__main__":
    main()
