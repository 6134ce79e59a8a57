"""Configuration: one YAML file plus environment overrides for connections, loaded once at the edge.

``load_config()`` is called by the CLI only; everything below receives the frozen :class:`Config`
(or the sub-model it needs). Nothing else reads files or the environment for settings.

Errors name the key: ``config key 'window.step_s': Input should be greater than 0``.

Detection defaults (detector parameters, votes per bot type, tolerance levels) live in the
package's readable ``data/detection.yaml``; a user's config may override any part of it under
``detection:``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BOT_TYPES: tuple[str, ...] = (
    "account_takeover",
    "scraping",
    "security_crawlers",
    "resource_consumption",
    "api_abuse",
)
Tolerance = Literal["low", "normal", "high"]
Reaction = Literal["denylist", "graylist", "monitor"]


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the reason."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputConfig(_Frozen):
    format: Literal["auto", "json", "combined", "common", "log_format"] = "auto"
    log_format: str | None = None
    max_line_bytes: int = Field(65536, gt=0)

    @model_validator(mode="after")
    def _log_format_needed(self) -> InputConfig:
        if self.format == "log_format" and not self.log_format:
            raise ValueError("format 'log_format' needs input.log_format (an nginx-style log_format string)")
        return self


class KafkaConfig(_Frozen):
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "abuse-stream"
    input_topic: str = "access-logs"
    dlq_topic: str = "access-logs.dlq"
    verdicts_topic: str = "abuse.verdicts"
    ip_lists_topic: str = "abuse.ip-lists"
    batch_size: int = Field(
        100_000, gt=0, description="max messages per consume() call (a catching-up service reads this many)"
    )
    batch_timeout_s: float = Field(
        0.5, gt=0, description="longest wait for input when none is there (what is there is taken at once)"
    )
    session_timeout_ms: int = Field(45000, ge=1000)
    create_topics: bool = True
    input_partitions: int = Field(4, gt=0, description="partitions when abuse-stream creates the input topic")
    consumer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)


class DatabaseConfig(_Frozen):
    url: str | None = "sqlite:///abuse-stream.db"
    write_retries: int = Field(
        8,
        ge=0,
        description="replay and CLI writes: retries with backoff (run retries each batch until it lands)",
    )


class WindowConfig(_Frozen):
    key: Literal["ip", "session"] = "ip"
    length_s: float = Field(300.0, gt=0, description="sliding window length, event time")
    step_s: float = Field(10.0, gt=0, description="evaluation step = bucket size, event time")
    lateness_s: float = Field(5.0, ge=0, description="how late (event time) a record may arrive")
    max_clients: int = Field(1_000_000, gt=0, description="cap on tracked clients; oldest are evicted")
    max_paths_per_bucket: int = Field(256, gt=0)
    idle_advance_s: float = Field(
        2.0, gt=0, description="run mode: after this much wall time without input, let event time advance"
    )

    @model_validator(mode="after")
    def _steps_fit(self) -> WindowConfig:
        if self.length_s < self.step_s:
            raise ValueError("length_s must be >= step_s")
        if abs(self.length_s / self.step_s - round(self.length_s / self.step_s)) > 1e-9:
            raise ValueError("length_s must be a whole multiple of step_s")
        return self


class BotTypeConfig(_Frozen):
    votes: dict[str, float] = Field(default_factory=dict, description="detector name -> votes")
    min_votes_possible: float = Field(
        0.0, ge=0, description="judge the bot type only when detectors worth this many votes could judge"
    )

    @field_validator("votes")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, n in v.items():
            if n < 0:
                raise ValueError(f"votes for {name!r} must be >= 0")
        return v


class BaselineConfig(_Frozen):
    warmup_samples: int = Field(500, ge=0, description="samples per application before baselines are trusted")
    epoch_s: float = Field(
        300.0, gt=0, description="baselines learn once per epoch (event time) and apply from the next one"
    )
    sample_per_epoch: int = Field(1000, gt=0, description="clients learnt from per application per epoch")
    seed: int = 42


class DetectionConfig(_Frozen):
    signatures_file: str | None = None
    tolerance_levels: dict[str, float] = Field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    bot_types: dict[str, BotTypeConfig] = Field(default_factory=dict)
    baseline: BaselineConfig = BaselineConfig()

    @model_validator(mode="after")
    def _consistent(self) -> DetectionConfig:
        for level in ("low", "normal", "high"):
            if level not in self.tolerance_levels:
                raise ValueError(f"tolerance_levels.{level} is missing")
        for level, thr in self.tolerance_levels.items():
            if not 0 < thr <= 1:
                raise ValueError(f"tolerance_levels.{level} must be in (0, 1]")
        for bt, conf in self.bot_types.items():
            for det in conf.votes:
                if det not in self.detectors:
                    raise ValueError(f"bot_types.{bt}.votes names unknown detector {det!r}")
        return self


class BotTypePolicy(_Frozen):
    enabled: bool = True
    reaction: Reaction = "graylist"
    tolerance: Tolerance | None = None


class ProfileConfig(_Frozen):
    name: str
    applications: list[str] = Field(default_factory=lambda: ["*"], description="host globs")
    tolerance: Tolerance = "normal"
    duration_s: float = Field(3600.0, gt=0, description="lifetime of automatic IP-list entries")
    sensitive_endpoints: list[str] = Field(
        default_factory=list, description="endpoint globs (over 'METHOD /templated/path') that are sensitive"
    )
    bot_types: dict[str, BotTypePolicy] = Field(default_factory=dict)

    @field_validator("bot_types")
    @classmethod
    def _known_types(cls, v: dict[str, BotTypePolicy]) -> dict[str, BotTypePolicy]:
        return v

    def policy(self, bot_type: str) -> BotTypePolicy:
        return self.bot_types.get(bot_type, _DEFAULT_POLICIES.get(bot_type, BotTypePolicy()))

    def matches(self, host: str | None) -> bool:
        h = (host or "").lower()
        return any(fnmatch.fnmatchcase(h, g.lower()) for g in self.applications)


_DEFAULT_POLICIES: dict[str, BotTypePolicy] = {
    "security_crawlers": BotTypePolicy(reaction="denylist"),
    "account_takeover": BotTypePolicy(reaction="denylist"),
    "api_abuse": BotTypePolicy(reaction="graylist"),
    "scraping": BotTypePolicy(reaction="graylist"),
    "resource_consumption": BotTypePolicy(reaction="graylist"),
}


class ExceptionConfig(_Frozen):
    value: str
    kind: Literal["ip", "cidr", "country", "source"] | None = None  # guessed from the value when absent
    comment: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> ExceptionConfig:
        from abuse_stream.policy import guess_kind, normalise

        normalise(self.kind or guess_kind(self.value), self.value)
        return self


class PolicyConfig(_Frozen):
    exceptions: list[ExceptionConfig] = Field(default_factory=list)
    source_files: dict[str, str] = Field(
        default_factory=dict, description="source type -> file of IPs/CIDRs (e.g. datacenters, tor)"
    )
    reload_s: float = Field(30.0, gt=0, description="run: how often exceptions are re-read from the database")


class MetricsConfig(_Frozen):
    port: int | None = Field(9108, ge=0, le=65535, description="Prometheus metrics port for run (None: off)")
    address: str = "0.0.0.0"


class Config(_Frozen):
    input: InputConfig = InputConfig()
    kafka: KafkaConfig = KafkaConfig()
    database: DatabaseConfig = DatabaseConfig()
    window: WindowConfig = WindowConfig()
    detection: DetectionConfig
    profiles: list[ProfileConfig] = Field(default_factory=lambda: [ProfileConfig(name="default")])
    policy: PolicyConfig = PolicyConfig()
    metrics: MetricsConfig = MetricsConfig()
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _profiles(self) -> Config:
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("profile names must be unique")
        if not self.profiles:
            raise ValueError("at least one profile is needed")
        known = set(self.detection.bot_types)
        for p in self.profiles:
            for bt in p.bot_types:
                if bt not in known:
                    raise ValueError(
                        f"profile {p.name!r} names unknown bot type {bt!r} (known: {sorted(known)})"
                    )
        return self

    def profile_for(self, host: str | None) -> ProfileConfig:
        for p in self.profiles:
            if p.matches(host):
                return p
        return self.profiles[-1]


def default_detection() -> dict[str, Any]:
    """The shipped detection defaults (``abuse_stream/data/detection.yaml``) as a plain dict."""
    text = resources.files("abuse_stream.data").joinpath("detection.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"config key '{key}': {msg}")
    return "; ".join(lines)


def build_config(data: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Validate a config mapping (as read from YAML) merged over the defaults, then apply env overrides."""
    raw: dict[str, Any] = dict(data or {})
    if not isinstance(raw, dict):
        raise ConfigError("config file must be a YAML mapping")
    raw["detection"] = _deep_merge(default_detection(), raw.get("detection") or {})
    env = env or {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        raw["kafka"] = {**(raw.get("kafka") or {}), "bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"]}
    if env.get("DATABASE_URL"):
        raw["database"] = {**(raw.get("database") or {}), "url": env["DATABASE_URL"]}
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_error(e)) from None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (``path`` or ``$ABUSE_STREAM_CONFIG``; none = defaults) and validate it."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("ABUSE_STREAM_CONFIG")
    data: Any = {}
    if path:
        p = Path(path)
        try:
            text = p.read_text("utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must contain a YAML mapping at the top level")
    return build_config(data, env)
