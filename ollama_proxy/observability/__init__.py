"""What the proxy did: the request ledger, access log, usage, metrics, chat logs."""
