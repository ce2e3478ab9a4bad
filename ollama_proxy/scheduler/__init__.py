"""Share the GPUs: who runs next, on which server, with which load options.

The proxy holds the queue instead of Ollama: each server is sent only what it
runs at once, the next request is chosen by weighted fair share between
principals (interactive ahead of batch, with ageing), and a request is bound to
a server only when a slot frees, warm first. Two rooms: ``decisions``, the
pure logic driven by a clock (``core.Scheduler``, its order behind ``order``),
and ``transport``, where its state lives and how each worker reaches it (one
process, or several instances sharing Redis). The decisions never import the
transport.

How a ticket travels:

1. The dispatcher asks ``admission.Admission.admit`` for a slot: a ``tickets.Ticket`` is made
   (who, by ``fairness.Share``; the model; the servers that may run it; the reload options; the
   prompt's chain, ``prefix``).
2. The worker's ``client.SchedulerClient`` starts it at once on a lent slot if it may
   (``lending``), or sends it (``wire.submit``) to the arbiter: ``local`` over a Unix socket,
   ``shared`` through Redis, ``inprocess`` in the arbiter's own worker.
3. The ``arbiter`` feeds ``core.Scheduler``: ``submit`` queues it, and every event (an end, a
   cancel, a refresh, the tick) hands out the grants it made possible (``wire.grant``).
4. The client wakes the request with its ``tickets.Grant``: the server and the options to send.
5. When the answer ends, ``release`` tells the arbiter (``end``, with Ollama's prefill counts);
   a client that left while waiting is a ``cancel``.
"""
