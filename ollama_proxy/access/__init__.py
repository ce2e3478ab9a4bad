"""Who is calling and what they may do: tokens, managed keys, rate limits."""
