"""Send each request for an Ollama model to a server: which one, and when (``dispatcher``).

The dispatcher stands between the relay and the two rooms it uses: the scheduler
(who runs next, and where) and the backends (the bytes on the wire). ``requester``
takes who asks from the request's context; ``body`` makes the bytes that go.
"""
