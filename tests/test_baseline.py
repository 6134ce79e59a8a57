"""The array form of river's HalfSpaceTrees gives exactly what river gives row by row."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import polars as pl
from river import anomaly

from abuse_stream.baseline import BEHAVIOR_FEATURES, BehaviorModel, HSTArrays

FEATURES = sorted(BEHAVIOR_FEATURES)


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.random((n, len(FEATURES)))
    x[: n // 4] = rng.random((n // 4, len(FEATURES))) * 0.05  # a dense cluster: early stops and deep paths
    return x


def _dicts(x: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, r), strict=True)) for r in x]


def _masses(m: anomaly.HalfSpaceTrees) -> list[tuple[int, int]]:
    return [(n.l_mass, n.r_mass) for t in m.trees for n in t.iter_dfs()]


def test_array_learning_and_scoring_match_river_row_by_row():
    rng = np.random.default_rng(7)
    river_model = anomaly.HalfSpaceTrees(n_trees=5, height=4, window_size=20, seed=3)
    river_model.learn_one(_dicts(_rows(rng, 1))[0])
    ours = copy.deepcopy(river_model)
    arrays = HSTArrays(ours)
    assert arrays.features == FEATURES
    for n in (7, 33, 20, 1, 59):  # batches across window roll-overs
        x = _rows(rng, n)
        for d in _dicts(x):
            river_model.learn_one(d)
        arrays.learn(x)
        arrays.sync()
        assert _masses(ours) == _masses(river_model)
        assert (ours.counter, ours._first_window) == (river_model.counter, river_model._first_window)
        probe = _rows(rng, 50)
        expected = [river_model.score_one(d) for d in _dicts(probe)]
        assert arrays.score(probe).tolist() == expected


def test_behavior_model_scores_like_river_and_pickles_without_its_arrays():
    rng = np.random.default_rng(1)
    frame = pl.DataFrame(
        {
            "requests": rng.integers(1, 3000, 600),
            "unique_path_ratio": rng.random(600),
            "unique_template_ratio": rng.random(600),
            "distinct_templates": rng.integers(1, 300, 600),
            "share_4xx": rng.random(600),
            "share_404": rng.random(600),
            "share_post": rng.random(600),
            "share_sensitive": rng.random(600),
            "iat_cv": pl.Series([None, *rng.random(599) * 4], dtype=pl.Float64),
            "distinct_uas": rng.integers(1, 12, 600),
        }
    )
    model = BehaviorModel(seed=5)
    reference = anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=5)
    for part in (frame.head(300), frame.slice(300, 200)):
        model.learn(part)
        for x in BehaviorModel.rows(part):
            reference.learn_one(x)
    assert model.n == 500
    assert model.score(frame.tail(100)) == [
        reference.score_one(x) for x in BehaviorModel.rows(frame.tail(100))
    ]
    restored = pickle.loads(pickle.dumps(model))
    assert "_hst" not in restored.__dict__
    assert restored.score(frame.tail(100)) == model.score(frame.tail(100))


def test_trees_from_the_cache_equal_river_building_its_own():
    """Every partition's behaviour model gets its trees from a per-process cache: the same trees,
    masses and scores as river building them on the model's first row."""
    from abuse_stream.baseline import _with_trees

    rng = np.random.default_rng(5)
    rows = _dicts(_rows(rng, 130))
    for _ in range(2):  # the second model comes from the cache
        river_model = anomaly.HalfSpaceTrees(n_trees=6, height=5, window_size=40, seed=11)
        ours = _with_trees(anomaly.HalfSpaceTrees(n_trees=6, height=5, window_size=40, seed=11), FEATURES)
        assert ours.trees and not river_model.trees and _masses(ours) == [(0, 0)] * len(_masses(ours))
        for r in rows:
            river_model.learn_one(r)
            ours.learn_one(r)
        thresholds = [[getattr(n, "threshold", None) for n in t.iter_dfs()] for t in ours.trees]
        assert thresholds == [
            [getattr(n, "threshold", None) for n in t.iter_dfs()] for t in river_model.trees
        ]
        assert _masses(ours) == _masses(river_model)
        assert [ours.score_one(r) for r in rows[:40]] == [river_model.score_one(r) for r in rows[:40]]
