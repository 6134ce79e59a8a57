"""Baseline: river online models of what is normal for each application.

For every metric a detector compares against normal (``Detector.baseline_metric``), the baseline
keeps a river ``stats.Quantile`` per application and one over all applications. Learning happens
once per epoch (``epoch_s`` of event time; what it learns applies from the next epoch), on a seeded
sample of the clients that no detector flagged: bots must not teach the baseline that they are normal
(the same rule as river's ``AnomalyFilter`` with ``protect_anomaly_detector=True``). Until a model has
seen ``warmup_samples`` values it answers null ("insufficient data"), and detectors fall back to their
warm-up behaviour. An application still warming up borrows the all-applications model when that one
is warm.

The state pickles (:meth:`TrafficBaselines.snapshot` / :meth:`restore`) so it survives a restart.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl
from river import stats

from abuse_stream.config import BaselineConfig
from abuse_stream.detectors.base import Baselines

ALL_APPS = "*"


@dataclass
class _Model:
    quantile: stats.Quantile
    n: int = 0


@dataclass
class TrafficBaselines(Baselines):
    cfg: BaselineConfig
    metrics: Mapping[str, float]  # metric name -> quantile level learned
    models: dict[tuple[str, str], _Model] = field(default_factory=dict)

    def _model(self, app: str, metric: str) -> _Model:
        m = self.models.get((app, metric))
        if m is None:
            m = self.models[(app, metric)] = _Model(stats.Quantile(self.metrics[metric]))
        return m

    def value(self, metric: str, app: str | None) -> float | None:
        for a in (app or ALL_APPS, ALL_APPS):
            m = self.models.get((a, metric))
            if m is not None and m.n >= self.cfg.warmup_samples:
                v = m.quantile.get()
                return None if v is None else float(v)
        return None

    def lookup(self, metric: str, apps: pl.Series) -> pl.Series:
        if metric not in self.metrics:
            raise KeyError(f"no baseline metric {metric!r}")
        uniq = apps.unique().to_list()
        table = pl.DataFrame(
            {"app": uniq, "v": [self.value(metric, a) for a in uniq]},
            schema={"app": pl.String, "v": pl.Float64},
        )
        return (
            apps.alias("app")
            .to_frame()
            .join(table, on="app", how="left", nulls_equal=True, maintain_order="left")["v"]
        )

    def learn(self, apps: pl.Series, values: Mapping[str, pl.Series], eligible: pl.Series, step: int) -> int:
        """Learn from a seeded sample (per application) of the eligible rows; returns rows learnt.

        ``step`` (the epoch number) seeds the sample, so the same input learns the same values.
        """
        df = pl.DataFrame({"app": apps.fill_null(ALL_APPS), **dict(values)}).filter(eligible)
        if df.height == 0:
            return 0
        learnt = 0
        k = self.cfg.sample_per_epoch
        for (app,), part in df.partition_by("app", as_dict=True).items():
            if part.height > k:
                part = part.sample(n=k, seed=self.cfg.seed + step)
            for metric in values:
                col = part[metric].drop_nulls().to_list()
                for target in (str(app), ALL_APPS):
                    m = self._model(target, metric)
                    for x in col:
                        m.quantile.update(x)
                    m.n += len(col)
            learnt += part.height
        return learnt

    def snapshot(self) -> bytes:
        return pickle.dumps(self.models, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> None:
        self.models = pickle.loads(blob)  # noqa: S301 - our own snapshot, stored by us
