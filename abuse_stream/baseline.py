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

import copy
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from river import anomaly, stats

from abuse_stream.config import BaselineConfig
from abuse_stream.detectors.base import Baselines

ALL_APPS = "*"


@dataclass
class _Model:
    quantile: stats.Quantile
    n: int = 0


#: session features of the behaviour model, each mapped to [0, 1] by a fixed transform (HalfSpaceTrees
#: needs bounded inputs; fixed transforms keep a score comparable across time, unlike running min-max)
BEHAVIOR_FEATURES: dict[str, pl.Expr] = {
    "volume": (pl.col("requests").cast(pl.Float64).log1p() / math.log1p(2000)).clip(0, 1),
    "unique_paths": pl.col("unique_path_ratio").clip(0, 1),
    "unique_endpoints": pl.col("unique_template_ratio").clip(0, 1),
    "breadth": (pl.col("distinct_templates").cast(pl.Float64).log1p() / math.log1p(200)).clip(0, 1),
    "errors": pl.col("share_4xx").clip(0, 1),
    "not_found": pl.col("share_404").clip(0, 1),
    "writes": pl.col("share_post").clip(0, 1),
    "sensitive": pl.col("share_sensitive").clip(0, 1),
    "regularity": (pl.col("iat_cv").fill_null(1.5).clip(0, 3) / 3),
    "agents": ((pl.col("distinct_uas").cast(pl.Float64) - 1).clip(0, 9) / 9),
}


def learning_frame(scored: pl.DataFrame) -> pl.DataFrame:
    """The columns of a judged step that learning reads (client, step, application, the behaviour
    model's inputs and every detector's ``<name>__value``): what waits for the end of an epoch, instead
    of every feature, finding and detail of every client judged in it."""
    need = ["key", "bucket", "host", "requests"]
    for e in BEHAVIOR_FEATURES.values():
        need += e.meta.root_names()
    need += [c for c in scored.columns if c.endswith("__value")]
    return scored.select(list(dict.fromkeys(need)))


class HSTArrays:
    """A river ``HalfSpaceTrees`` laid out as arrays, to learn and score many rows at once.

    Same results as ``learn_one`` / ``score_one`` row by row (masses are integers, so the sums are
    exact whatever the order), for rows that carry every feature (ours always do). Nodes are numbered
    breadth first per tree: node ``i`` has children ``2i+1`` and ``2i+2``; the last level are leaves.

    The arrays hold the masses: :meth:`learn` changes them alone, and :meth:`sync` writes them back
    into river's node objects (25 trees of 511 nodes: ~8 ms, more than the learning itself), which
    only a snapshot or river's own ``learn_one`` / ``score_one`` needs.
    """

    def __init__(self, model: anomaly.HalfSpaceTrees) -> None:
        self.model = model
        self.height = model.height
        self.nodes: list[list[Any]] = []  # per tree, the node objects in breadth-first order
        for root in model.trees:
            level, order = [root], []
            for _ in range(model.height + 1):
                order += level
                level = [c for n in level if hasattr(n, "children") for c in n.children]
            self.nodes.append(order)
        self.features = sorted({n.feature for t in self.nodes for n in t if hasattr(n, "feature")})
        branches = 2**model.height - 1
        col = {f: i for i, f in enumerate(self.features)}
        self.feature = np.array([[col[n.feature] for n in t[:branches]] for t in self.nodes], dtype=np.int64)
        self.threshold = np.array([[n.threshold for n in t[:branches]] for t in self.nodes], dtype=np.float64)
        # (trees, nodes), the masses of record while this object lives
        self.l_mass = np.array([[n.l_mass for n in nodes] for nodes in self.nodes], dtype=np.int64)
        self.r_mass = np.array([[n.r_mass for n in nodes] for nodes in self.nodes], dtype=np.int64)
        self.synced = True  # river's node objects hold the same masses

    def paths(self, x: np.ndarray) -> np.ndarray:
        """Node index at each depth (0..height) per tree and row: shape (trees, height + 1, rows)."""
        trees, n = len(self.nodes), x.shape[0]
        out = np.zeros((trees, self.height + 1, n), dtype=np.int64)
        flat_x = np.ascontiguousarray(x, dtype=np.float64).ravel()
        row_start = (np.arange(n) * x.shape[1])[None, :]
        node_base = (np.arange(trees) * self.feature.shape[1])[:, None]
        flat_feature, flat_threshold = self.feature.ravel(), self.threshold.ravel()
        idx = np.zeros((trees, n), dtype=np.int64)
        for d in range(self.height):  # all trees and rows at once, one level at a time
            node = node_base + idx
            right = ~(flat_x[row_start + flat_feature[node]] < flat_threshold[node])
            idx = 2 * idx + 1 + right
            out[:, d + 1] = idx
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        """``score_one`` for every row of ``x`` (columns in :attr:`features` order)."""
        m = self.model
        if m._first_window:
            return np.zeros(x.shape[0], dtype=np.float64)
        size_limit = 0.1 * m.window_size
        paths = self.paths(x)
        r_mass = self.r_mass
        t = np.arange(len(self.nodes))[:, None]
        total = np.zeros(paths.shape[::2], dtype=np.int64)  # (trees, rows)
        going = np.ones(paths.shape[::2], dtype=bool)
        for d in range(self.height + 1):
            r = r_mass[t, paths[:, d]]
            total += np.where(going, r << d, 0)
            going &= ~(r < size_limit)  # river stops below the size limit (after adding)
        return 1 - total.sum(axis=0).astype(np.float64) / m._max_score

    def learn(self, x: np.ndarray) -> None:
        """``learn_one`` for every row of ``x`` in order (masses roll over every ``window_size`` rows)."""
        m = self.model
        paths = self.paths(x)
        width = len(self.nodes[0])
        l_mass, r_mass = self.l_mass, self.r_mass
        flat = paths + (np.arange(len(self.nodes)) * width)[:, None, None]  # node ids across all trees
        start = 0
        while start < x.shape[0]:
            end = min(x.shape[0], start + m.window_size - m.counter)
            l_mass += np.bincount(flat[:, :, start:end].ravel(), minlength=l_mass.size).reshape(l_mass.shape)
            m.counter += end - start
            if m.counter == m.window_size:
                r_mass, l_mass = l_mass, np.zeros_like(l_mass)
                m._first_window = False
                m.counter = 0
            start = end
        self.l_mass, self.r_mass = l_mass, r_mass
        self.synced = False

    def sync(self) -> None:
        """Write the masses back into river's node objects (before pickling the model, say)."""
        if self.synced:
            return
        for nodes, ls, rs in zip(self.nodes, self.l_mass.tolist(), self.r_mass.tolist(), strict=True):
            for node, lv, rv in zip(nodes, ls, rs, strict=True):
                node.l_mass, node.r_mass = lv, rv
        self.synced = True


_BUILT: dict[tuple[Any, ...], bytes] = {}


def _with_trees(model: anomaly.HalfSpaceTrees, features: Sequence[str]) -> anomaly.HalfSpaceTrees:
    """A copy of ``model`` (no trees yet) with the trees river builds on its first row.

    The trees depend only on the model's parameters, seed and feature names, never on the row's
    values; building them (25 trees of 511 nodes, Python objects) takes ~0.1 s and happens for every
    partition's model, so they are built once per process and copied (a pickle round trip, ~10 ms).
    """
    key = (
        model.n_trees,
        model.height,
        model.window_size,
        model.seed,
        tuple(sorted(dict(model.limits).items())),
        tuple(sorted(features)),
    )
    blob = _BUILT.get(key)
    if blob is None:
        built = copy.deepcopy(model)
        built.learn_one(dict.fromkeys(features, 0.0))  # builds the trees, then learns the row: undo that
        for nodes in built._tree_nodes:
            for node in nodes:
                node.l_mass = node.r_mass = 0
        built.counter, built._first_window = 0, True
        blob = _BUILT[key] = pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.loads(blob)  # noqa: S301 - our own bytes


@dataclass
class BehaviorModel:
    """river HalfSpaceTrees over :data:`BEHAVIOR_FEATURES`; ``learn_one``/``score_one`` per client row,
    run over all rows at once by :class:`HSTArrays`."""

    seed: int
    model: anomaly.HalfSpaceTrees = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        self.model = anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=self.seed)

    @staticmethod
    def rows(features: pl.DataFrame) -> list[dict[str, float]]:
        return BehaviorModel.frame(features).to_dicts()

    @staticmethod
    def frame(features: pl.DataFrame) -> pl.DataFrame:
        return features.select(**BEHAVIOR_FEATURES).fill_nan(0.0).fill_null(0.0)

    def _arrays(self) -> HSTArrays:
        arrays: HSTArrays | None = self.__dict__.get("_hst")
        if arrays is None or arrays.model is not self.model:  # (re)built after a restore
            arrays = self.__dict__["_hst"] = HSTArrays(self.model)
        return arrays

    def learn(self, features: pl.DataFrame) -> None:
        x = self.frame(features)
        if x.height and not self.model.trees:  # the first row builds the trees (river's own code)
            self.model = _with_trees(self.model, x.columns)
            self.model.learn_one(x.row(0, named=True))
            x = x.slice(1)
        if x.height:
            a = self._arrays()
            a.learn(x.select(a.features).to_numpy().astype(np.float64))
        self.n += features.height

    def score(self, features: pl.DataFrame) -> list[float]:
        if not self.model.trees or features.height == 0:  # (no arrays yet, or no row to score)
            return [self.model.score_one(x) for x in self.rows(features)]
        a = self._arrays()
        return a.score(self.frame(features).select(a.features).to_numpy().astype(np.float64)).tolist()

    def _sync(self) -> None:
        arrays: HSTArrays | None = self.__dict__.get("_hst")
        if arrays is not None and arrays.model is self.model:
            arrays.sync()

    def __getstate__(self) -> dict[str, Any]:
        self._sync()  # the arrays' masses into river's nodes: snapshots hold river's model only
        return {k: v for k, v in self.__dict__.items() if k != "_hst"}


@dataclass
class TrafficBaselines(Baselines):
    cfg: BaselineConfig
    metrics: Mapping[str, float]  # metric name -> quantile level learned
    models: dict[tuple[str, str], _Model] = field(default_factory=dict)
    behavior: BehaviorModel | None = None
    max_scored: int = 5000  # rows scored per call: per-client Python stays bounded

    def score(self, model: str, features: pl.DataFrame, eligible: pl.Series) -> pl.Series:
        out = pl.Series([None] * features.height, dtype=pl.Float64)
        b = self.behavior
        if model != "behavior" or b is None or b.n < self.cfg.warmup_samples or features.height == 0:
            return out
        idx = features.with_row_index("_i").filter(eligible)["_i"].head(self.max_scored)
        if idx.len() == 0:
            return out
        scores = b.score(features[idx])
        return out.scatter(idx, pl.Series(scores, dtype=pl.Float64))

    def learn_behavior(
        self, features: pl.DataFrame, eligible: pl.Series, epoch: int, min_requests: int
    ) -> None:
        if self.behavior is None:
            self.behavior = BehaviorModel(seed=self.cfg.seed)
        rows = features.filter(eligible & (features["requests"] >= min_requests))
        if rows.height > self.cfg.sample_per_epoch:
            rows = rows.sample(n=self.cfg.sample_per_epoch, seed=self.cfg.seed + epoch)
        self.behavior.learn(rows.sort("key", "bucket"))

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
        return pickle.dumps(
            {"models": self.models, "behavior": self.behavior}, protocol=pickle.HIGHEST_PROTOCOL
        )

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)  # noqa: S301 - our own snapshot, stored by us
        self.models, self.behavior = state["models"], state["behavior"]
