"""The detector protocol: a small plug-in that reads features and returns one finding per client.

A detector has a ``name``, a ``description``, the feature columns it ``reads``, a pydantic
``Params`` model (validated from ``detection.detectors.<name>`` in the config) and one pure method,
:meth:`Detector.evaluate`, which maps the feature frame of one window step to a findings frame with
the same row order:

=============  ========  ==================================================================
column         dtype     meaning
=============  ========  ==================================================================
value          Float64   what the detector measured for the client
baseline       Float64   what is normal for the application (null: no baseline / warming up)
threshold      Float64   the value compared against
fired          Boolean   the client looks like a bot by this measure
worked         Boolean   the detector had enough data to judge (else it does not vote at all)
fired_types    List[Str] optional: the bot types the firing supports (null: all it votes for)
detail         String    optional: a short human explanation
=============  ========  ==================================================================

Votes per bot type are not the detector's business: they live in the detection config, and
``scoring`` turns findings into confidence. Detectors never read the clock or the environment: event
time arrives in the features (``window_end``), learned baselines in :class:`DetectContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "value": pl.Float64(),
    "baseline": pl.Float64(),
    "threshold": pl.Float64(),
    "fired": pl.Boolean(),
    "worked": pl.Boolean(),
}
OPTIONAL_FINDING_SCHEMA: dict[str, pl.DataType] = {
    "fired_types": pl.List(pl.String()),
    "detail": pl.String(),
}


class Baselines(ABC):
    """What detectors may ask of the learned normal traffic (see ``abuse_stream.baseline``)."""

    @abstractmethod
    def lookup(self, metric: str, apps: pl.Series) -> pl.Series:
        """The learned value of ``metric`` per application (null while warming up), aligned with ``apps``."""

    def score(self, model: str, features: pl.DataFrame, eligible: pl.Series) -> pl.Series:
        """Anomaly scores (higher = more unusual) of an online model of normal clients, aligned with
        ``features``; null where not scored (not ``eligible``, or the model is still warming up)."""
        return pl.Series([None] * features.height, dtype=pl.Float64)


@dataclass(frozen=True)
class DetectContext:
    """What detectors may know besides the features. The frame may hold several window steps (its
    ``window_end`` column says which); baselines are those learnt before the steps being judged."""

    step_s: float
    window_s: float
    baselines: Baselines


class Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Detector(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[Params]] = Params
    #: the metric this detector compares against a learned baseline (its finding ``value`` is what
    #: the baseline learns from normal clients), or None
    baseline_metric: ClassVar[str | None] = None

    def baseline_quantile(self) -> float:
        """Which quantile of normal clients' values the baseline reports for this detector."""
        return 0.5

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.params = self.Params.model_validate(dict(params or {}))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"config key 'detection.detectors.{self.name}.{loc}': {first['msg']}") from None

    @abstractmethod
    def evaluate(self, features: pl.DataFrame, ctx: DetectContext) -> pl.DataFrame:
        """Return one finding row per feature row (see the module docstring)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


def above_normal(factor: float, floor: float, warmup: float) -> pl.Expr:
    """The threshold of a "far above normal" detector, over a ``baseline`` column: ``factor`` x the
    learned baseline, never below ``floor``; ``warmup`` while the baseline is still null (warming up)."""
    return (
        pl.when(pl.col("baseline").is_null())
        .then(pl.lit(float(warmup)))
        .otherwise(pl.max_horizontal(pl.lit(float(floor)), pl.col("baseline") * factor))
    )


def check_findings(name: str, findings: pl.DataFrame, rows: int, prefix: str = "") -> pl.DataFrame:
    """Validate a detector's output and bring it to the finding schema (shared by all detectors).

    ``prefix`` is put before every column name (the pipeline's ``<detector>__``), in the same pass.
    """
    if findings.height != rows:
        raise ValueError(f"detector {name} returned {findings.height} findings for {rows} clients")
    missing = [c for c in FINDING_SCHEMA if c not in findings.columns]
    if missing:
        raise ValueError(f"detector {name} findings lack columns {missing}")
    worked = pl.col("worked").cast(pl.Boolean).fill_null(False)
    cols = {c: pl.col(c).cast(t) for c, t in FINDING_SCHEMA.items()}
    cols["fired"] = pl.col("fired").cast(pl.Boolean).fill_null(False) & worked
    cols["worked"] = worked
    cols.update(
        (c, pl.col(c).cast(t) if c in findings.columns else pl.lit(None, t))
        for c, t in OPTIONAL_FINDING_SCHEMA.items()
    )
    return findings.select(e.alias(prefix + c) for c, e in cols.items())
