"""Share fake GPU servers through the proxy's scheduler, and straight: ``python -m bench.scheduling``.

The servers are fake Ollamas (tests/fakes/ollama.py) that run requests in slots as Ollama's
scheduler does: a number of slots per loaded model, a FIFO behind them, load time, a reload when a
request's num_ctx differs, a token rate, and a waiting request dropped when its client leaves.
Five scenarios, each run straight to the servers and through the proxy (two gevent workers):
noisy neighbour (noisy.py; its people ask on a beat, then, in a second run, each a while after
reading an answer), thrash (thrash.py), warm or cold (warm.py), abandonment (abandon.py) and
agents beside people (agents.py, on servers whose slots keep prompt caches).
docs/benchmarks.md says how to read them.
"""

from __future__ import annotations

from bench.scheduling import abandon, agents, noisy, thrash, warm

SCENARIOS = {"noisy-neighbour": noisy.main, "noisy-neighbour-reading": noisy.reading, "thrash": thrash.main,
             "warm-or-cold": warm.main, "abandonment": abandon.main, "agents": agents.main}
