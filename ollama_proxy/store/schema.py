"""Declare the store's tables (SQLAlchemy Core); the migrations create them."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

# Names constraints the same way on every database, so later migrations can refer to them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})


class UtcDateTime(TypeDecorator):
    """Store a moment as naive UTC (SQLite has no time zones); read it back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous: pass an aware one")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, index=True),  # the visible part, e.g. "op-AbCdEfGh"
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the whole secret
    Column("scope", String(16), nullable=False),  # generate | manage
    Column("models", JSON, nullable=False),  # glob patterns; empty = every model
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("expires_at", UtcDateTime),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("chat_log", Boolean),  # its chats logged (true) or not (false); null: chat_logs.enabled decides
    Column("weight", Float, nullable=False, server_default="1"),  # its share of the GPUs against others'
    Column("klass", String(16), nullable=False, server_default="interactive"),  # or batch: waits behind
    Column("trusted_frontend", Boolean, nullable=False, server_default=false()),  # may name its end users
    Column("web", Boolean, nullable=False, server_default=false()),  # may use Ollama's web search and fetch
    Column("cloud", Boolean, nullable=False, server_default=false()),  # may use cloud models (ollama.com)
    Column("team", String(100), index=True),  # the team it belongs to (teams.name); null: none
    Column("owner", String(255), index=True),  # the person who answers for it (a sign-on subject); null: the operator
    Column("service", Boolean, nullable=False, server_default=false()),  # a service's key, its owner responsible
    # The secret the last rotation replaced (migration 0019): its prefix and hash, and when it stops working
    # (the rotation itself without a grace period). Null: never rotated.
    Column("previous_prefix", String(16), index=True),
    Column("previous_secret_hash", String(64)),
    Column("previous_until", UtcDateTime),
    sqlite_autoincrement=True,  # an id is never given again (migration 0016): it keys counters and usage
)

teams = Table(
    "teams", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("weight", Float, nullable=False, server_default="1"),  # the team's share of the GPUs against others'
    Column("klass", String(16), nullable=False, server_default="interactive"),  # or batch, for all its keys
    Column("models", JSON, nullable=False),  # glob patterns its keys may use; empty = every model
    Column("rpm", Integer),  # requests per minute of all its keys together
    Column("tpm", Integer),  # tokens per minute of all its keys together
    Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,  # an id is never given again (migration 0016): it keys counters and usage
)

usage = Table(
    "usage", metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", UtcDateTime, nullable=False, index=True),
    Column("request_id", String(128)),
    Column("key_name", String(100), index=True),
    Column("surface", String(16)),
    Column("model", String(255), index=True),  # as the client asked for it
    Column("backend", String(100)),
    Column("upstream_model", String(255)),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("duration_ms", Float),
    Column("ttft_ms", Float),
    Column("status", Integer),
    Column("aborted", Boolean),
    Column("cached_tokens", Integer),  # of prompt_tokens, those Ollama said it read from its cache (null: not said)
    # Last in the exports, which follow the order here (a migrated table has it before cached_tokens: no matter).
    Column("end_user", String(128)),  # the user a trusted front end named (access.end_users); null: none named
    Column("team", String(100), index=True),  # the key's team when the request came (null: none)
    Column("gpu_seconds", Float),  # Ollama's total_duration of the answers, else measured (null: a provider's)
    Column("queue_ms", Float),  # time spent waiting for a slot on a server
    Column("measured", Boolean),  # a figure is the proxy's measure or estimate, where Ollama reported none
    # The key's and team's rows (api_keys.id, teams.id; never given again): a key or team deleted and made again
    # under its name is another. Null: a token of the file, no team, or a row of a key gone before 0016.
    Column("key_id", Integer),
    Column("team_id", Integer, index=True),
    # Of prompt_tokens, those the scheduler expected the server to hold in its cache: the proxy's estimate, never
    # Ollama's word (that is cached_tokens). Null: none made.
    Column("cached_tokens_estimated", Integer),
)

aliases = Table(
    "aliases", metadata,
    Column("id", Integer, primary_key=True),
    Column("alias", String(255), nullable=False, unique=True),
    Column("target", String(255), nullable=False),
)

overrides = Table(
    "overrides", metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(255), nullable=False, unique=True),
    Column("defaults", JSON, nullable=False),
    Column("enforce", JSON, nullable=False),
)

# Append-only: no method of the store changes or removes a row, and triggers refuse it (migration 0008).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", UtcDateTime, nullable=False, index=True),
    Column("actor", String(255), nullable=False),  # an admin user, an OIDC subject, an OS user
    Column("actor_kind", String(16), nullable=False),  # admin | oidc | cli
    Column("origin", String(255), nullable=False),  # the client's address, or the CLI's host
    Column("action", String(64), nullable=False),  # key.create, alias.delete, sign-in failed ...
    Column("target", String(255), nullable=False),  # the name of what was changed, or who signed in
    Column("before", JSON),
    Column("after", JSON),
)

# A team's or a key's budget for one kind of period; `ollama-proxy budgets set` replaces the one it names.
budgets = Table(
    "budgets", metadata,
    Column("id", Integer, primary_key=True),
    Column("holder_kind", String(8), nullable=False),  # team | key
    Column("holder", String(100), nullable=False),  # the team's or key's name
    Column("period", String(8), nullable=False),  # day | week | month, in budgets.timezone
    Column("unit", String(16), nullable=False),  # tokens | gpu_seconds
    Column("amount", Float, nullable=False),
    Column("mode", String(8), nullable=False),  # hard | soft | shadow
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("holder_kind", "holder", "period", "unit", name="uq_budgets_holder"),
)

def _budget_period_columns() -> list[Column]:
    """The columns that name one period of one budget: its holder, period, unit and the period's start."""
    return [Column("holder_kind", String(8), nullable=False), Column("holder", String(100), nullable=False),
            Column("period", String(8), nullable=False), Column("unit", String(16), nullable=False),
            Column("period_start", UtcDateTime, nullable=False)]


# What each holder spent in each period (the period's start, UTC), in each unit: added to as requests end.
budget_spend = Table(
    "budget_spend", metadata,
    Column("id", Integer, primary_key=True),
    *_budget_period_columns(),
    Column("spent", Float, nullable=False),
    Column("refusals", Integer, nullable=False, server_default="0"),  # requests a shadow budget would have refused
    UniqueConstraint("holder_kind", "holder", "period", "unit", "period_start", name="uq_budget_spend_period"),
)

# The shares of budgets that workers leased (``access.leases``): each admits requests against its own without
# reading the store, and adds what they spent as its lease ends. A lease counts as spent for every other worker
# until it expires; one whose worker died lapses then.
budget_leases = Table(
    "budget_leases", metadata,
    Column("id", Integer, primary_key=True),
    *_budget_period_columns(),
    Column("lessee", String(80), nullable=False),  # the worker: host, pid and a random part
    Column("amount", Float, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    UniqueConstraint("holder_kind", "holder", "period", "unit", "period_start", "lessee",
                     name="uq_budget_leases_lessee"),
)

# A new key's secret on its way from the admin page's create form to the page that shows it, once: sealed with a
# one-time pad that only the browser's session holds, deleted as it is shown or once gone by.
shown_secrets = Table(
    "shown_secrets", metadata,
    Column("id", Integer, primary_key=True),
    Column("handle", String(64), nullable=False, unique=True),  # random; the session holds it
    Column("key_name", String(100), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # the secret XOR the pad: nothing without the session
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# What the identity provider last said of each person who signed in with it: their role and team, when it
# confirmed them, whether it no longer vouches for them; and the refresh token to ask it again (sealed).
members = Table(
    "members", metadata,
    Column("id", Integer, primary_key=True),
    Column("subject", String(255), nullable=False, unique=True),  # the sign-on subject (api_keys.owner)
    Column("name", String(255), nullable=False),  # as the audit trail names them
    Column("role", String(16)),  # the role the claims gave; null: none
    Column("team", String(100)),  # the team the claims gave; null: none
    Column("confirmed_at", UtcDateTime, nullable=False),  # the provider last confirmed the role and team
    Column("checked_at", UtcDateTime, nullable=False),  # the provider was last asked, whatever it answered
    Column("lost_at", UtcDateTime),  # the provider no longer vouches for them; null: it does
    Column("note", String(300)),  # why they were lost, or what the last re-check could not do
    Column("refresh_token", Text),  # sealed with a key of the admin secret; null: none to ask again with
    Column("checking_until", UtcDateTime),  # a worker re-checks them until then; null: none does
)
