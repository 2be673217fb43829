"""Alert rules: a declarative YAML file parsed into pydantic models (never evaluated as code).

    channels:                      # where notifications go; secrets come from environment variables
      log: {type: log}
      ops: {type: webhook, url_env: FINMON_ALERT_WEBHOOK_URL}
      chat: {type: slack, url_env: FINMON_SLACK_WEBHOOK_URL}
      mail: {type: email, host: smtp.example.com, port: 587, username: finmon,
             password_env: FINMON_SMTP_PASSWORD, sender: finmon@example.com, to: [oncall@example.com]}
    defaults: {channels: [log], repeat_interval: 4h}
    rules:
      - name: negative-share-surge
        scope: ticker              # market | topic | ticker | all | an exact key | a list of these
        window: 5min               # a window size the aggregate stage computes
        when: ["story_negative_share >= 0.6"]   # all must hold; or {metric, op, value} objects
        min_count: 5               # at least this many items in the window (copies count)
        min_stories: 5             # and this many distinct stories (monitor/windows/stories.py; default 0)
        for: 5min                  # how long the conditions must hold before the alert fires
        severity: warning          # info | warning | critical
        labels: {category: sentiment}
        channels: [log, ops]       # routing; defaults.channels when absent
        repeat_interval: 1h        # re-notify while firing; defaults.repeat_interval when absent

A condition on a z-score that is not defined yet (too little history) does not hold, nor one on a story
metric (`story_sentiment`, `story_negative_share`) of a window whose stories are not settled yet.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.alerts.errors import RulesError
from monitor.records import WINDOW_METRICS
from monitor.windows import WindowError, parse_spec

METRICS = WINDOW_METRICS
KINDS = ("market", "topic", "ticker", "all")
_STRICT = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _duration(value: Any) -> Any:
    """'5min', '1h', '30s', '1D' (pandas aliases) or seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        try:
            return pd.Timedelta(value.strip()).to_pytimedelta()
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a duration; use e.g. '30s', '5min', '1h', '1D'") from exc
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Condition(BaseModel):
    """`metric op value`, e.g. `negative_share >= 0.6`."""

    model_config = _STRICT
    metric: Literal[METRICS]  # type: ignore[valid-type]
    op: Literal[">", ">=", "<", "<="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _CONDITION.match(data)
            if not match:
                raise ValueError(f"condition {data!r} must read 'METRIC OP NUMBER' (e.g. 'negative_share >= 0.6'); "
                                 f"metrics: {', '.join(METRICS)}; operators: > >= < <=")
            return {"metric": match.group(1), "op": match.group(2), "value": float(match.group(3))}
        return data

    def holds(self, window: dict[str, Any]) -> bool:
        actual = window.get(self.metric)
        if actual is None or actual != actual:  # undefined z-score (null/NaN): the condition does not hold
            return False
        value = float(actual)
        return {">": value > self.value, ">=": value >= self.value, "<": value < self.value,
                "<=": value <= self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class Rule(BaseModel):
    """One alert rule (see the module docstring for the fields)."""

    model_config = _STRICT
    name: str = Field(pattern=_NAME)
    description: str = ""
    scope: tuple[str, ...]
    window: str
    when: tuple[Condition, ...] = Field(min_length=1)
    min_count: int = Field(1, ge=1)
    min_stories: int = Field(0, ge=0)
    for_: Duration = Field(timedelta(0), alias="for")
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    channels: tuple[str, ...] | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool = True

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("scope must be market, topic, ticker, all, an exact key like 'ticker:AAPL', or a list")
        for item in items:
            if not isinstance(item, str) or not (item in KINDS or re.match(r"^(topic|ticker):.+$", item)):
                raise ValueError(f"scope entry {item!r} is not allowed; use market, topic, ticker, all, "
                                 "'topic:<name>' or 'ticker:<SYMBOL>'")
        return tuple(items)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        try:
            return parse_spec(value).label
        except WindowError as exc:
            raise ValueError(str(exc)) from exc

    def in_scope(self, key: str) -> bool:
        kind = key.split(":", 1)[0]
        return any(s in ("all", kind, key) for s in self.scope)

    def matches(self, window: dict[str, Any]) -> bool:
        return (int(window.get("count") or 0) >= self.min_count
                and int(window.get("n_stories") or 0) >= self.min_stories
                and all(c.holds(window) for c in self.when))


class WebhookChannel(BaseModel):
    model_config = _STRICT
    type: Literal["webhook"]
    url_env: str = Field(description="Environment variable holding the URL (a secret: never logged).")


class SlackChannel(BaseModel):
    model_config = _STRICT
    type: Literal["slack"]
    url_env: str


class EmailChannel(BaseModel):
    model_config = _STRICT
    type: Literal["email"]
    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    sender: str
    to: tuple[str, ...] = Field(min_length=1)
    ca_file: str | None = Field(None, description="CA bundle to verify the server with (default: system).")


class LogChannel(BaseModel):
    model_config = _STRICT
    type: Literal["log"]


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel | LogChannel, Field(discriminator="type")]


def _default_channels() -> dict[str, WebhookChannel | SlackChannel | EmailChannel | LogChannel]:
    return {"log": LogChannel(type="log")}


class Defaults(BaseModel):
    model_config = _STRICT
    channels: tuple[str, ...] = ("log",)
    repeat_interval: Duration = timedelta(hours=4)


class RuleSet(BaseModel):
    """A whole rules file."""

    model_config = _STRICT
    channels: dict[str, Channel] = Field(default_factory=_default_channels)
    defaults: Defaults = Field(default_factory=Defaults)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _log_always(cls, data: Any) -> Any:
        """The `log` channel exists even when a file defines only others."""
        if isinstance(data, dict) and isinstance(data.get("channels"), dict) and "log" not in data["channels"]:
            data = {**data, "channels": {**data["channels"], "log": {"type": "log"}}}
        return data

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        routes = [("defaults", self.defaults.channels), *((f"rule {r.name!r}", r.channels or ()) for r in self.rules)]
        for route in routes:
            unknown = [c for c in route[1] if c not in self.channels]
            if unknown:
                raise ValueError(f"{route[0]}: channel(s) {', '.join(unknown)} not defined under 'channels' "
                                 f"(defined: {', '.join(self.channels) or 'none'})")
        return self

    def channels_of(self, rule: Rule) -> tuple[str, ...]:
        return rule.channels if rule.channels is not None else self.defaults.channels

    def repeat_of(self, rule: Rule) -> timedelta:
        return rule.repeat_interval if rule.repeat_interval is not None else self.defaults.repeat_interval

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def default_rules_text() -> str:
    return resources.files("monitor").joinpath("data/rules.yaml").read_text(encoding="utf-8")


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Parse and validate a rules file (None: the shipped defaults); RulesError explains any problem."""
    where = str(path) if path is not None else "monitor/data/rules.yaml (shipped defaults)"
    try:
        text = Path(path).read_text(encoding="utf-8") if path is not None else default_rules_text()
    except OSError as exc:
        raise RulesError(f"rules file {where} cannot be read ({exc.strerror}); fix FINMON_ALERTS__RULES_FILE") from exc
    return parse_rules(text, where)


def parse_rules(text: str, where: str = "<rules>") -> RuleSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesError(f"rules file {where} must be a mapping with 'rules:' (and optional 'channels:', "
                         f"'defaults:'), not {type(data).__name__}")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"rules file {where}: " + "; ".join(_explain(err, data) for err in exc.errors())) from exc


def _explain(err: Any, data: dict[str, Any]) -> str:
    loc = list(err["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        raw = data["rules"][loc[1]] if loc[1] < len(data.get("rules") or []) else {}
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"rule {name!r}" if name else f"rule #{loc[1] + 1}"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in {"function-before", "function-after"}))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "literal_error":
        message = f"{message} (got {err.get('input')!r})"
    if err["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the rules schema in monitor/alerts/rules.py"
    prefix = ", ".join(p for p in (where, f"field {field!r}" if field else "") if p)
    return f"{prefix}: {message}" if prefix else message
