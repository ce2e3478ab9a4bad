"""The people the identity provider signs in: their roles, their claims, and the provider asked again about them.

The admin page's views sign people in and keep their sessions (``blueprints.admin``); the
provider's client (``provider``), what its claims mean (``claims``, ``roles``), how its refresh
tokens are kept (``refresh_tokens``), how a person is asked about again (``recheck``, in each
worker's loop: ``recheck_loop``) and when a session's role is to be checked again
(``session_checks``) live here, with no request or response.
"""
