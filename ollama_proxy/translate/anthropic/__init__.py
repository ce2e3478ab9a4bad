"""Translate between Anthropic's Messages API and Ollama's ``/api/chat``.

- ``request.from_anthropic_messages(body)``: a Messages request -> an Ollama chat body.
- ``answer.to_anthropic_message(resp, ...)``: a finished Ollama chat response -> a Message.
- ``stream.MessagesStreamConverter``: Ollama chunks -> Anthropic stream events.
- ``tokens.estimate(body)``: an estimate of a request's prompt tokens.
- ``correction.TokenCorrection``: each model's learnt ratio of counted to estimated tokens.
- ``usage.InputUsage``: the input tokens an answer reports (counted, estimated, scaled).
"""
