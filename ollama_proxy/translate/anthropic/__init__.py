"""Translate between Anthropic's Messages API and Ollama's ``/api/chat``.

- ``request.from_anthropic_messages(body)``: a Messages request -> an Ollama chat body.
- ``answer.to_anthropic_message(resp, ...)``: a finished Ollama chat response -> a Message.
- ``stream.MessagesStreamConverter``: Ollama chunks -> Anthropic stream events.
- ``tokens.count_tokens(body)``: an estimate of a request's input tokens.
"""
