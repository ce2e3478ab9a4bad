"""Share the GPUs: who runs next, on which server, with which load options.

The proxy holds the queue instead of Ollama: each server is sent only what it
runs at once, the next request is chosen by weighted fair share between
principals (interactive ahead of batch, with ageing), and a request is bound to
a server only when a slot frees, warm first. ``core.Scheduler`` is the pure
decision logic, driven by a clock; where its state lives (one process, or
several instances sharing Redis) is another module's job.
"""
