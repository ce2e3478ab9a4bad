"""The admin page's forms: what each accepts, checked before the store sees it."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

from flask_wtf import FlaskForm
from marshmallow import ValidationError as FieldError
from wtforms import BooleanField, DateField, FloatField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from ollama_proxy.config.models import check_fields
from ollama_proxy.durations import FORMS, parse_duration
from ollama_proxy.scheduler.decisions import fairness
from ollama_proxy.scheduler.decisions.fairness import MAX_WEIGHT
from ollama_proxy.store.budgets import HOLDERS, MODES, PERIODS
from ollama_proxy.store.keys import expiry_after, last_day_before

SCOPES = [SelectChoice("generate", "generate: inference and listings"),
          SelectChoice("manage", "manage: also pull, push, delete models")]
CLASSES = [SelectChoice(klass, klass) for klass in fairness.CLASSES]
# A key's chat_log as the form spells it: follow chat_logs.enabled (None), always (True), never (False).
CHAT_LOG_VALUES = {"global": None, "on": True, "off": False}


def chat_log_choices(globally_on: bool) -> list[SelectChoice]:
    """Offer the three chat log choices, the first saying what the global setting now is."""
    return [SelectChoice("global", f"as chat_logs.enabled says (now {'on' if globally_on else 'off'})"),
            SelectChoice("on", "on: log this key's chats"), SelectChoice("off", "off: never log this key's chats")]


def chat_log_choice(chat_log: bool | None) -> str:
    """Name the form's choice for a key's stored ``chat_log``."""
    return next(choice for choice, value in CHAT_LOG_VALUES.items() if value is chat_log)


def split_patterns(text: str | None) -> list[str]:
    """Split model patterns typed with commas, spaces or newlines."""
    return [part for part in re.split(r"[\s,]+", text or "") if part]


def end_of_day(day: date | None) -> datetime | None:
    """Turn an expiry date into the moment the key stops working: it works all of that day (UTC)."""
    return None if day is None else expiry_after(day)


def past_expiry(day: date | None, kept: date | None, today: date) -> str | None:
    """Say what is wrong with expiring a key after ``day`` (UTC), if it is gone by and not the one ``kept``."""
    if day is None or day >= today or day == kept:
        return None
    return f"{day.isoformat()} is in the past: a key that expired before it was saved never works"


def name_field() -> StringField:
    """A new key's or team's name: what logs, usage and the CLI call it."""
    return StringField("Name", validators=[DataRequired(), Length(max=100),
                                           Regexp(r"^[\w.@-]+$", message="letters, digits and . _ - @ only")])


class KeyLimitsForm(FlaskForm):
    """What a key may do: scope, models, limits, expiry, its share of the GPUs; and whether its chats are logged."""

    scope = SelectField("Scope", choices=SCOPES, default="generate")
    models = StringField("Models", validators=[Optional(), Length(max=2000)],
                         description="glob patterns, e.g. llama3* qwen2.5:7b; empty: every model")
    rpm = IntegerField("Requests per minute", validators=[Optional(), NumberRange(min=1)])
    tpm = IntegerField("Tokens per minute", validators=[Optional(), NumberRange(min=1)])
    expires = DateField("Expires after", validators=[Optional()])
    chat_log = SelectField("Chat log", choices=chat_log_choices(False), default="global")
    weight = FloatField("Weight", default=1.0, validators=[Optional()],
                        description="its share of the GPUs against other keys' while they wait: 2 is twice 1's")
    klass = SelectField("Class", choices=CLASSES, default="interactive",
                        description="batch work waits behind interactive work (scheduling.batch_ageing at most)")
    trusted_frontend = BooleanField("Trusted front end",
                                    description="a front end (Open WebUI) that names its users in X-OpenWebUI-User-* "
                                                "headers: each user gets a fair share of their own")
    web = BooleanField("Web search and fetch",
                       description="Ollama's web search and web fetch, which make the Ollama server reach the internet")
    cloud = BooleanField("Cloud models",
                         description="models tagged :cloud or -cloud (gpt-oss:120b-cloud), which send the prompt to "
                                     "ollama.com, under the Ollama server's account")
    team = SelectField("Team", choices=[SelectChoice("", "none")], default="",
                       description="its team's models, limits and class bound the key's; its share is in the team's")

    def __init__(self, *args, chat_logs_enabled: bool = False, kept_expiry: datetime | None = None,
                 teams: tuple[str, ...] = (), chat_log_locked: bool = False, **kwargs):
        """``kept_expiry``: when a key being edited expires now, which its form keeps, even when gone by,
        while its day is left as shown; ``teams``: the teams' names, to choose from; ``chat_log_locked``:
        no chat log field, so a POST cannot set it (a new key follows chat_logs.enabled, an edited one keeps its
        own)."""
        super().__init__(*args, **kwargs)
        if chat_log_locked:
            del self.chat_log
        else:
            self.chat_log.choices = chat_log_choices(chat_logs_enabled)
        self.team.choices = [SelectChoice("", "none"), *(SelectChoice(name, name) for name in teams)]
        self.kept_expiry = kept_expiry

    def validate_weight(self, field) -> None:
        if field.data is not None and not 0 < field.data <= MAX_WEIGHT:  # NaN too; None: not a number at all
            raise ValidationError(f"a number above 0, at most {MAX_WEIGHT:g}")

    def validate_expires(self, field) -> None:
        problem = past_expiry(field.data, self._kept_day(), datetime.now(timezone.utc).date())
        if problem:
            raise ValidationError(problem)

    def _kept_day(self) -> date | None:
        return None if self.kept_expiry is None else last_day_before(self.kept_expiry)

    def _expires_at(self) -> datetime | None:
        """The moment chosen, or the kept one while its day is left as shown: a date alone is not all of it."""
        if self.kept_expiry is not None and self.expires.data == self._kept_day():
            return self.kept_expiry
        return end_of_day(self.expires.data)

    def store_fields(self) -> dict:
        fields = {"scope": self.scope.data, "models": split_patterns(self.models.data), "rpm": self.rpm.data,
                  "tpm": self.tpm.data, "expires_at": self._expires_at(), "klass": self.klass.data,
                  "trusted_frontend": self.trusted_frontend.data, "web": self.web.data, "cloud": self.cloud.data,
                  "team": self.team.data or None, **self._weight()}
        return fields if self.chat_log is None else {**fields, "chat_log": CHAT_LOG_VALUES[self.chat_log.data]}

    def _weight(self) -> dict:
        """The weight typed, if any: left empty, a new key gets 1 and an edited key keeps its own."""
        return {} if self.weight.data is None else {"weight": self.weight.data}


class NewKeyForm(KeyLimitsForm):
    """A new key's name and settings, and who answers for it: its maker, or the person a service key names."""

    name = name_field()
    service = BooleanField("Service key", description="a service's (a shared front end's, a pipeline's), not yours: "
                                                       "the person named responsible answers for it")
    responsible = SelectField("Responsible person", choices=[SelectChoice("", "me")], default="",
                              description="who answers for a service key: it lapses with them, counts toward "
                                          "their keys and their budget")

    def __init__(self, *args, people=(), **kwargs):
        """``people``: those who may be named responsible for a service key (``owners.people_in_scope``)."""
        super().__init__(*args, **kwargs)
        self.responsible.choices = [SelectChoice("", "me"),
                                    *(SelectChoice(p.subject, f"{p.name} ({p.subject})") for p in people)]


class RotateKeyForm(FlaskForm):
    """A key's new secret: how long its old one still works, time for its clients to take the new one."""

    grace = StringField("Old secret works for", default="0", validators=[Length(max=20)],
                        description=f"{FORMS}, or 0: refused at once")

    def validate_grace(self, field) -> None:
        if parse_duration(field.data or "") is None:
            raise ValidationError(f"not a duration ({FORMS}, or 0)")

    def grace_span(self) -> timedelta:
        return parse_duration(self.grace.data)


class MyKeyForm(FlaskForm):
    """A key someone makes for themselves: in their team, the generate scope, no more than the team allows."""

    name = name_field()
    models = StringField("Models", validators=[Optional(), Length(max=2000)],
                         description="glob patterns, e.g. llama3*; empty: every model your team may use")
    rpm = IntegerField("Requests per minute", validators=[Optional(), NumberRange(min=1)],
                       description="empty: your team's limit alone")
    tpm = IntegerField("Tokens per minute", validators=[Optional(), NumberRange(min=1)],
                       description="empty: your team's limit alone")
    expires = DateField("Expires after", validators=[Optional()])

    def validate_expires(self, field) -> None:
        problem = past_expiry(field.data, None, datetime.now(timezone.utc).date())
        if problem:
            raise ValidationError(problem)

    def store_fields(self) -> dict:
        return {"models": split_patterns(self.models.data), "rpm": self.rpm.data, "tpm": self.tpm.data,
                "expires_at": end_of_day(self.expires.data)}


class TeamForm(FlaskForm):
    """A team's share of the GPUs, its models and the limits its keys count against together."""

    weight = FloatField("Weight", default=1.0, validators=[Optional()],
                        description="the team's share of the GPUs against other teams' (and keys in none)")
    klass = SelectField("Class", choices=CLASSES, default="interactive",
                        description="batch: every key of the team waits behind interactive work")
    models = StringField("Models", validators=[Optional(), Length(max=2000)],
                         description="glob patterns its keys may use, e.g. llama3* qwen3:*; empty: every model")
    rpm = IntegerField("Requests per minute", validators=[Optional(), NumberRange(min=1)],
                       description="of all its keys together")
    tpm = IntegerField("Tokens per minute", validators=[Optional(), NumberRange(min=1)],
                       description="of all its keys together")

    def validate_weight(self, field) -> None:
        if field.data is not None and not 0 < field.data <= MAX_WEIGHT:
            raise ValidationError(f"a number above 0, at most {MAX_WEIGHT:g}")

    def store_fields(self) -> dict:
        fields = {"klass": self.klass.data, "models": split_patterns(self.models.data), "rpm": self.rpm.data,
                  "tpm": self.tpm.data}
        return fields if self.weight.data is None else {**fields, "weight": self.weight.data}


class NewTeamForm(TeamForm):
    name = name_field()


class BudgetForm(FlaskForm):
    """A team's, a key's or a person's budget for one period, in tokens or GPU-seconds."""

    holder_kind = SelectField("For a", choices=[SelectChoice(kind, kind) for kind in HOLDERS])
    holder = StringField("Name", validators=[DataRequired(), Length(max=100)],
                         description="the team's or key's name, or the person's subject (every key they own)")
    period = SelectField("Period", choices=[SelectChoice(p, p) for p in PERIODS],
                         description="a calendar day, week (from Monday) or month, in budgets.timezone")
    unit = SelectField("Unit", choices=[SelectChoice("tokens", "tokens"), SelectChoice("gpu_seconds", "GPU-seconds")])
    amount = FloatField("Amount", validators=[DataRequired(), NumberRange(min=0)])
    mode = SelectField("Mode", choices=[SelectChoice(m, m) for m in MODES],
                       description="hard: refuse once spent; soft: serve, flagged; shadow: serve, count what it "
                                   "would have refused")


class AliasForm(FlaskForm):
    alias = StringField("Alias", validators=[DataRequired(), Length(max=255)])
    target = StringField("Model", validators=[DataRequired(), Length(max=255)])


def _json_object(form, field) -> None:
    try:
        value = json.loads(field.data or "{}")
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError('a JSON object, e.g. {"temperature": 0.2}')
    try:
        check_fields(value)  # the same check as the configuration file's overrides
    except FieldError as exc:
        raise ValidationError(" ".join(exc.messages)) from None
    field.parsed = value


class OverrideForm(FlaskForm):
    model = StringField("Model", validators=[DataRequired(), Length(max=255)])
    defaults = TextAreaField("Defaults", validators=[_json_object],
                             description="fields a request gets when it does not set them (JSON object)")
    enforce = TextAreaField("Enforced", validators=[_json_object],
                            description="fields every request gets, whatever it sets (JSON object)")
