"""Pure translations between each surface's shapes and Ollama's (no I/O)."""
