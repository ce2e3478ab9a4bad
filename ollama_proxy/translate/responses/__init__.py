"""Translate the OpenAI Responses API (stateless) to and from Ollama's ``/api/chat``.

- ``request.from_responses_request(body)``: a Responses request -> an Ollama chat body.
- ``answer.to_responses_response(resp, ...)``: a complete Ollama chat response -> a Response.
- ``stream.ResponsesStreamConverter``: Ollama chunks -> Responses stream events.
"""
