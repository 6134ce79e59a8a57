"""Window maths in event time, with ASCII timelines (one char = 1 s, step 10 s)."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass

import polars as pl
import pytest

from abuse_stream.config import WindowConfig
from abuse_stream.window import WindowState
from tests.helpers import T0, TinyClassifier, enriched, frame, record, timeline


def state(**kw: float) -> WindowState:
    cfg = {"length_s": 30.0, "step_s": 10.0, "lateness_s": 5.0, **kw}
    return WindowState(WindowConfig(**cfg))


@dataclass
class Step:
    end: float
    clients: pl.DataFrame


def steps_of(*closed: pl.DataFrame) -> list[Step]:
    """Split closed-step frames into one Step per window end, oldest first."""
    frames = [c for c in closed if c.height]
    if not frames:
        return []
    df = pl.concat(frames)
    return [
        Step(end, part.sort("key"))
        for (end,), part in sorted(df.partition_by("window_end", as_dict=True).items())
    ]


def feed(w: WindowState, records: pl.DataFrame, batch: int | None = None) -> list[Step]:
    closed = []
    slices = [records] if batch is None else list(records.iter_slices(batch))
    for s in slices:
        w.add(enriched(s))
        closed.append(w.close_ready())
    return steps_of(*closed)


def test_bucket_closes_only_after_watermark_passes_its_end_plus_lateness():
    w = state()
    #                       0         1         2
    #                       0123456789012345678901234
    steps = feed(w, timeline({"1.1.1.1": "xxx......xx....x"}))  # max ts T0+15 -> watermark T0+10
    assert [s.end - T0 for s in steps] == [10.0]
    assert steps[0].clients["n"].to_list() == [4]  # t=0,1,2,9
    steps = feed(w, timeline({"1.1.1.1": "x"}, t0=T0 + 24))  # watermark T0+19: bucket [10,20) not yet
    assert steps == []
    steps = feed(w, timeline({"1.1.1.1": "x"}, t0=T0 + 25))  # watermark T0+20 closes [10,20)
    assert [s.end - T0 for s in steps] == [20.0]
    assert steps[0].clients["n"].to_list() == [6]  # window [-10, 20): 4 + t=10,15


def test_out_of_order_within_lateness_lands_in_its_bucket():
    w = state()
    recs = frame([record(T0 + 1), record(T0 + 12), record(T0 + 8), record(T0 + 14), record(T0 + 3)])
    late = w.add(enriched(recs))
    assert late.height == 0
    assert w.close_ready().height == 0  # watermark T0+9: nothing closes yet
    steps = steps_of(w.flush())
    by_end = {s.end - T0: s.clients["recent_counts"].to_list()[0][-1] for s in steps}
    assert by_end == {10.0: 3, 20.0: 2}


def test_record_older_than_a_closed_bucket_is_late_and_counted():
    w = state()
    feed(w, timeline({"1.1.1.1": "x" + "." * 20 + "x"}))  # max T0+21, closes [0,10)
    late = w.add(enriched(frame([record(T0 + 5), record(T0 + 12)])))
    assert late["ts"].to_list() == [T0 + 5]
    assert w.stats.late == 1


def _tangled_records(seed: int = 3) -> pl.DataFrame:
    """Records that make batching show if anything depends on it: many requests at identical times
    with different user agents (of the same and of different classes), hosts (some missing),
    sessions and latencies, more distinct paths than a bucket keeps, and arrival out of order
    (within the lateness, so none is late whatever the batching)."""
    rng = random.Random(seed)
    rows = []
    for i in range(200):
        t = T0 + rng.choice([0.0, 0.5, 1.0]) + (i // 8) * 1.5  # 8 requests share each instant
        rows.append(
            record(
                t,
                rng.choice(["1.1.1.1", "2.2.2.2", "3.3.3.3"]),
                path=f"/p/{rng.randrange(40)}",
                ua=rng.choice(["Mozilla/5.0 A", "Mozilla/5.0 B", "scanner-x", "scanner-y", ""]),
                host=rng.choice(["a.example", "b.example", None]),
                session=rng.choice(["s1", "s2", None]),
                status=rng.choice([200, 200, 404, 401]),
                latency_ms=rng.choice([0.1, 0.2, 0.3, 1 / 3, None]),
            )
        )
    rows.sort(key=lambda r: r["ts"] + rng.uniform(-2.0, 2.0))  # out of order by up to 4 s
    return frame(rows)


def _batchings(n: int) -> list[list[int]]:
    """Batch sizes: all at once, one by one, tiny, odd, and random sizes."""
    rng = random.Random(11)
    sizes = []
    while sum(sizes) < n:
        sizes.append(rng.randint(1, 60))
    return [[n], [1] * n, [3] * (n // 3 + 1), [50] * (n // 50 + 1), sizes]


def _run(
    records: pl.DataFrame, sizes: list[int], shuffle: bool, key: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    w = state(max_paths_per_bucket=4, key=key)  # type: ignore[arg-type]
    rng = random.Random(5)
    closed, start = [], 0
    for size in sizes:
        part = records.slice(start, size)
        start += size
        if part.height == 0:
            continue
        if shuffle:  # the order within a batch must not matter either
            part = part.sample(fraction=1.0, shuffle=True, seed=rng.randrange(1000))
        assert w.add(enriched(part, key=key)).height == 0
        closed.append(w.close_ready())
    closed.append(w.flush())
    steps = pl.concat(closed).sort("bucket", "key")
    buckets = pl.concat([f for _, f in w.closed]).sort("bucket", "key")
    if sizes == [1] * len(sizes):  # live: steps worked out early, some clients again (out of order)
        assert w.stats.closed_early == w.stats.closed_steps - 1 and w.stats.redone_early > 0  # not flush
    return steps, buckets


@pytest.mark.parametrize("merge_min", [1, 10**9])  # batches merged into the open buckets early / at close
@pytest.mark.parametrize("key", ["ip", "session"])
def test_results_do_not_depend_on_batching(key, merge_min, monkeypatch):
    monkeypatch.setattr("abuse_stream.window._MERGE_MIN_ROWS", merge_min)
    recs = _tangled_records()
    ref_steps, ref_buckets = _run(recs, [recs.height], False, key)
    assert ref_steps.height >= 12 and ref_steps["distinct_paths"].max() > 4  # the caps were reached
    for sizes in _batchings(recs.height):
        for shuffle in (False, True) if sizes[0] > 1 else (False,):
            steps, buckets = _run(recs, sizes, shuffle, key)
            assert steps.equals(ref_steps), (sizes[:3], shuffle)  # every column, bit for bit
            assert buckets.equals(ref_buckets), (sizes[:3], shuffle)  # and the evidence they keep


def test_findings_and_verdicts_do_not_depend_on_batching():
    from abuse_stream.config import build_config
    from abuse_stream.pipeline import Pipeline

    recs = _tangled_records()

    def run(sizes: list[int]) -> tuple[pl.DataFrame, list[str]]:
        p = Pipeline(
            build_config({"window": {"length_s": 30, "step_s": 10, "lateness_s": 5}}), TinyClassifier()
        )
        p.keep_findings = True
        verdicts, start = [], 0
        for size in sizes:
            verdicts += p.process_records(recs.slice(start, size)).verdicts
            start += size
        verdicts += p.finish().verdicts
        findings = p.findings_frame()
        return findings.sort("bucket", "key"), sorted(json.dumps(v, sort_keys=True) for v in verdicts)

    ref = run([recs.height])
    assert ref[0].height >= 12
    for sizes in _batchings(recs.height)[1:]:
        got = run(sizes)
        assert got[0].equals(ref[0]), sizes[:3]
        assert got[1] == ref[1], sizes[:3]


def test_window_forgets_buckets_older_than_its_length():
    w = state()
    #                 0    1    2    3    4    5
    recs = timeline({"1.1.1.1": "3" + "." * 45 + "x"})
    steps = feed(w, recs) + steps_of(w.flush())
    last = steps[-1]
    assert last.end - T0 == 50.0
    assert last.clients["n"].to_list() == [1]  # the 3 requests at t=0 fell out of [20, 50)


def test_sparse_traffic_only_evaluates_steps_with_requests():
    w = state()
    recs = frame([record(T0 + i * 3600) for i in range(5)])
    steps = feed(w, recs) + steps_of(w.flush())
    assert len(steps) == 5


def test_inter_arrival_statistics_span_bucket_boundaries():
    w = state(length_s=60.0)
    recs = frame([record(T0 + 0.5 + 2 * i) for i in range(30)])  # every 2 s for 60 s
    steps = feed(w, recs) + steps_of(w.flush())
    c = steps[-1].clients.row(0, named=True)
    assert c["n"] == 30
    assert c["gap_n"] == 29
    assert c["gap_sum"] / c["gap_n"] == pytest.approx(2.0)
    var = c["gap_sq"] / c["gap_n"] - (c["gap_sum"] / c["gap_n"]) ** 2
    assert var == pytest.approx(0.0, abs=1e-6)


def test_client_cap_evicts_least_recently_seen_and_counts():
    w = state(max_clients=10)
    rows = [record(T0 + i * 0.1, f"10.0.0.{i}") for i in range(50)]
    rows += [record(T0 + 40 + i * 0.1, f"10.0.1.{i}") for i in range(8)]
    feed(w, frame(rows))
    w.flush()
    assert w.stats.evicted >= 40
    assert w.tracked_clients() <= 10


def test_session_key_groups_by_session_and_falls_back_to_ip():
    w = WindowState(WindowConfig(length_s=30, step_s=10, lateness_s=0, key="session"))
    recs = frame(
        [
            record(T0 + 1, "1.1.1.1", session="s1"),
            record(T0 + 2, "2.2.2.2", session="s1"),
            record(T0 + 3, "3.3.3.3"),
        ]
    )
    w.add(enriched(recs, key="session"))
    steps = steps_of(w.flush())
    got = dict(zip(steps[0].clients["key"].to_list(), steps[0].clients["n"].to_list(), strict=True))
    assert got == {"s1": 2, "3.3.3.3": 1}


def test_a_partition_read_ahead_does_not_make_another_partitions_records_late():
    w = state()
    ahead = enriched(timeline({"1.1.1.1": "x" * 60})).with_columns(_src=pl.lit(0, pl.Int64))
    behind = enriched(timeline({"2.2.2.2": "x" * 60})).with_columns(_src=pl.lit(1, pl.Int64))
    w.set_live_sources({0, 1})
    w.add(ahead)  # partition 0 read to the end first, partition 1 still unread
    assert w.close_ready().height == 0  # partition 1 has delivered nothing yet: the watermark waits
    w.add(behind.head(10))
    steps = steps_of(w.close_ready())
    assert [s.end - T0 for s in steps] == []  # partition 1 is at t=9: watermark 4
    late = w.add(behind.slice(10))
    assert late.height == 0
    w.set_live_sources(set())  # everything read
    steps = steps_of(w.close_ready())
    assert {s.end - T0 for s in steps} == {10.0, 20.0, 30.0, 40.0, 50.0}
    assert all(sorted(s.clients["key"].to_list()) == ["1.1.1.1", "2.2.2.2"] for s in steps)


def _evidence_one_by_one(w: WindowState, key: str, first: int, last: int) -> dict[str, object]:
    """The per-client evidence as first written (one filter per closed bucket): the reference."""
    rows = [f.filter(pl.col("key") == key) for b, f in w.closed if first <= b <= last]
    df = pl.concat(rows) if rows else pl.DataFrame()
    if df.height == 0:
        return {}
    tops = (
        df.select("top_endpoints")
        .explode("top_endpoints")
        .unnest("top_endpoints")
        .drop_nulls("endpoint")
        .group_by("endpoint")
        .agg(pl.col("n").sum())
        .sort(["n", "endpoint"], descending=[True, False])
        .head(5)
    )
    return {
        "first_request": float(df["first_ts"].min()),  # type: ignore[arg-type]
        "last_request": float(df["last_ts"].max()),  # type: ignore[arg-type]
        "requests": int(df["n"].sum()),
        "top_endpoints": [{"endpoint": e, "requests": int(n)} for e, n in tops.iter_rows()],
        "statuses": {c: int(df[f"n_{c}"].sum()) for c in ("2xx", "3xx", "4xx", "5xx")},
        "user_agents": [
            u for u in df.sort("ua_class", descending=True)["ua"].unique(maintain_order=True).to_list() if u
        ][:3],
    }


def test_evidence_for_many_verdicts_at_once_matches_one_by_one():
    import random

    rnd = random.Random(3)
    uas = ["Mozilla/5.0", "curl/8.0", "python-requests/2.31", "sqlmap/1.7", "Go-http-client/1.1", ""]
    rows = [
        record(
            T0 + rnd.uniform(0, 200),
            ip=f"10.0.0.{rnd.randrange(6)}",
            path=f"/p/{rnd.randrange(9)}",
            status=rnd.choice([200, 200, 301, 404, 500]),
            ua=rnd.choice(uas),
        )
        for _ in range(1500)
    ]
    w = state(length_s=300.0)
    w.add(enriched(frame(sorted(rows, key=lambda r: r["ts"]))))
    w.flush()
    buckets = [b for b, _ in w.closed]
    wanted = [
        (f"10.0.0.{i}", lo, hi)
        for i in range(7)  # 10.0.0.6 never came: {}
        for lo, hi in ((buckets[0], buckets[-1]), (buckets[3], buckets[9]), (buckets[5], buckets[5]))
    ]
    assert w.evidence_many(wanted) == [_evidence_one_by_one(w, *x) for x in wanted]
    assert w.evidence_many([]) == []


def test_evidence_user_agents_worst_first_in_the_order_evidence_always_had():
    plan = {"1.1.1.1": ["a/1", "b/1", "c/1"], "2.2.2.2": ["a/1", "scanner-1", "b/1", "scanner-2"]}
    rows = [record(T0 + 10 * i + 1, ip=ip, ua=ua) for ip, uas in plan.items() for i, ua in enumerate(uas)]
    w = state(length_s=300.0)
    w.add(enriched(frame(sorted(rows, key=lambda r: r["ts"]))))
    w.flush()
    lo, hi = w.closed[0][0], w.closed[-1][0]
    got = w.evidence_many([("1.1.1.1", lo, hi), ("2.2.2.2", lo, hi)])
    # a class that never decreases over the buckets: newest first; otherwise worst class first, oldest first
    assert [g["user_agents"] for g in got] == [["c/1", "b/1", "a/1"], ["scanner-1", "scanner-2", "a/1"]]
    assert got == [_evidence_one_by_one(w, k, lo, hi) for k in plan]


def test_merging_parts_equals_aggregating_at_once_also_for_rows_in_one_part_only():
    """merge_buckets passes a (client, bucket) found in one part only through unaggregated: it must
    come out as the aggregation makes it, endpoints without a template (dropped when merged) included."""
    from abuse_stream.window import aggregate_records, close_buckets, merge_buckets

    recs = enriched(_tangled_records())
    recs = recs.with_columns(template=pl.when(pl.col("path") == "/p/7").then(None).otherwise("template"))
    whole = close_buckets(merge_buckets([aggregate_records(recs, 10.0, 4)], 4)).sort("bucket", "key")
    assert (
        whole["top_endpoints"].list.eval(pl.element().struct.field("endpoint").is_null()).list.any().sum()
        == 0
    )
    rng = random.Random(2)
    for _ in range(5):
        cut = sorted(rng.sample(range(1, recs.height), 3))
        parts = [
            aggregate_records(recs.slice(a, b - a), 10.0, 4)
            for a, b in zip([0, *cut], [*cut, recs.height], strict=True)
        ]
        assert close_buckets(merge_buckets(parts, 4)).sort("bucket", "key").equals(whole)


def test_aggregating_by_partition_in_one_pass_equals_aggregating_each_partition_alone():
    """What PartitionedPipeline.prepare relies on: ``by=("_src",)`` gives each source's aggregate,
    including a client whose records came through two sources (each source keeps its own row)."""
    from abuse_stream.window import OPEN_SCHEMA, aggregate_records

    recs = enriched(_tangled_records())
    rng = random.Random(5)
    recs = recs.with_columns(_src=pl.Series([rng.randrange(3) for _ in range(recs.height)], dtype=pl.Int64))
    together = aggregate_records(recs, 10.0, 4, by=("_src",))
    assert together.columns == ["_src", *OPEN_SCHEMA]
    split = together.partition_by("_src", as_dict=True, include_key=False)
    assert sorted(split) == [(0,), (1,), (2,)]
    for (src,), alone in recs.partition_by("_src", as_dict=True).items():
        want = aggregate_records(alone, 10.0, 4).sort("key", "bucket")
        got = split[(src,)].sort("key", "bucket")
        # list columns are compared as sets where the aggregation gives no order (top endpoints)
        assert got.drop("top_endpoints").equals(want.drop("top_endpoints"))
        assert [sorted(x, key=str) for x in got["top_endpoints"].to_list()] == [
            sorted(x, key=str) for x in want["top_endpoints"].to_list()
        ]
    assert aggregate_records(recs.clear(), 10.0, 4, by=("_src",)).columns == ["_src", *OPEN_SCHEMA]


def test_window_aggregate_in_step_ranges_equals_one_pass(monkeypatch):
    """Many steps of many clients closing at once are spread in ranges of steps (bounded memory):
    the same rows, in the same order, as spreading them all at once."""
    import abuse_stream.window as window
    from abuse_stream.window import aggregate_records, close_buckets, merge_buckets, window_aggregate

    recs = enriched(_tangled_records())
    closed = close_buckets(merge_buckets([aggregate_records(recs, 10.0, 4)], 4))
    assert closed["bucket"].n_unique() >= 4
    whole = window_aggregate(closed, 6, 10.0)
    calls = []
    spread = window._spread_aggregate
    monkeypatch.setattr(window, "_spread_aggregate", lambda *a: calls.append(a[2:4]) or spread(*a))
    monkeypatch.setattr(window, "MAX_SPREAD_ROWS", 5)
    chunked = window_aggregate(closed, 6, 10.0)
    lo, hi = closed["bucket"].min(), closed["bucket"].max()
    assert len(calls) == hi - lo + 1  # one step per range: the most ranges there can be
    assert [a for a, _ in calls] == list(range(lo, hi + 1))
    assert chunked.equals(whole)
    some = closed.filter(pl.col("bucket") != lo + 1).select("key", "bucket")  # not every step judged
    monkeypatch.setattr(window, "MAX_SPREAD_ROWS", 10**9)
    want = window_aggregate(closed, 6, 10.0, some)
    monkeypatch.setattr(window, "MAX_SPREAD_ROWS", 5)
    assert window_aggregate(closed, 6, 10.0, some).equals(want)


@pytest.mark.parametrize("one_step_at_a_time", [False, True])
def test_gaps_and_recent_counts_match_the_records_they_come_from(one_step_at_a_time, monkeypatch):
    """Inter-arrival sums and the per-step request counts, worked out from the raw records by hand,
    at every judged step: whether the steps are spread together or judged one at a time (the
    shortcut a live close takes)."""
    import abuse_stream.window as window
    from abuse_stream.window import RECENT_STEPS, aggregate_records, close_buckets, merge_buckets

    if one_step_at_a_time:
        monkeypatch.setattr(window, "MAX_SPREAD_ROWS", 1)
    bpw, step = 2, 10.0  # a window shorter than the traffic: it leaves a client's older buckets out
    recs = enriched(_tangled_records(seed=8))
    closed = close_buckets(merge_buckets([aggregate_records(recs, step, 4)], 4))
    got = window.window_aggregate(closed, bpw, step)
    times: dict[str, list[tuple[int, int]]] = {}
    for key, ts in recs.select("key", "ts").iter_rows():
        times.setdefault(key, []).append((int(ts // step), round(ts * 1000)))
    assert got.height >= 12 and recs["ts"].max() - recs["ts"].min() > bpw * step
    for row in got.iter_rows(named=True):
        b = row["bucket"]
        mine = sorted(t for k, t in times[row["key"]] if b - bpw < k <= b)
        gaps = [y - x for x, y in itertools.pairwise(mine)]
        assert row["gap_n"] == len(gaps) and row["n"] == len(mine)
        assert row["gap_sum"] == sum(gaps) * 0.001
        assert row["gap_sq"] == sum(g * g for g in gaps) * 0.000_001
        per_step = [sum(1 for k, _ in times[row["key"]] if k == b - i) for i in range(bpw)]
        assert row["recent_counts"] == ([0] * RECENT_STEPS + per_step[::-1])[-RECENT_STEPS:]


def test_campaigns_count_a_client_at_every_judged_step_whose_window_holds_its_failures():
    """Each step's count, by hand: the clients whose logins over the window ending at that step (the
    ``buckets_per_window`` buckets up to it) are at least 80 % failed and 80 % of their requests. A
    failing bucket still counts at the last step its window holds, and at no step after it."""
    from abuse_stream.window import campaigns

    rng = random.Random(11)
    bpw, buckets = 4, list(range(100, 112))
    rows = [
        {
            "key": f"10.0.0.{k}",
            "bucket": b,
            "host": rng.choice(["a", "b"]),
            "n": n,
            "n_login": n,
            "n_auth_fail": f,
        }
        for k in range(12)
        for b in buckets
        if rng.random() < 0.3
        for n in [rng.randrange(1, 4)]
        for f in [rng.choice([0, n, n])]
    ]
    frames = [
        pl.DataFrame([r for r in rows if r["bucket"] == b])
        for b in buckets
        if any(r["bucket"] == b for r in rows)
    ]
    judged = buckets[5:9]  # a few steps, as one close_ready judges them

    def by_hand(step: int) -> dict[str, int]:
        per: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            if step - bpw < r["bucket"] <= step:
                t = per.setdefault((r["host"], r["key"]), [0, 0, 0])
                t[0], t[1], t[2] = t[0] + r["n"], t[1] + r["n_login"], t[2] + r["n_auth_fail"]
        out: dict[str, int] = {}
        for (host, _), (n, logins, fails) in per.items():
            if fails >= 1 and fails >= 0.8 * logins and logins >= 0.8 * n:
                out[host] = out.get(host, 0) + 1
        return out

    got = campaigns(frames, judged, bpw)
    assert sum(len(by_hand(step)) for step in judged) >= 3  # not a vacuous comparison
    for step in judged:
        mine = got.filter(pl.col("bucket") == step)
        assert dict(zip(mine["host"].to_list(), mine["campaign_failers"].to_list(), strict=True)) == by_hand(
            step
        )
    assert set(got["bucket"].to_list()) <= set(judged)


def test_closed_buckets_keep_the_busiest_endpoints_ties_by_name():
    """Whatever the number of endpoints a bucket saw (one, a few, more than are kept), the closed
    bucket keeps the busiest first, ties by name, at most TOP_ENDPOINTS."""
    from abuse_stream.window import TOP_ENDPOINTS, aggregate_records, close_buckets

    counts = {
        "1.1.1.1": {"/solo": 2},
        "2.2.2.2": {"/cart": 3, "/about": 1, "/basket": 3},
        "3.3.3.3": {f"/page{c}": n for c, n in zip("abcdefg", [1, 4, 2, 4, 1, 3, 2], strict=True)},
    }
    rows = [
        record(T0 + 0.1 * i, ip, path=path)
        for ip, paths in counts.items()
        for path, n in paths.items()
        for i in range(n)
    ]
    closed = close_buckets(aggregate_records(enriched(frame(rows)), 10.0, 8))
    for ip, paths in counts.items():
        want = sorted(((f"GET {p}", n) for p, n in paths.items()), key=lambda kv: (-kv[1], kv[0]))
        want = want[:TOP_ENDPOINTS]
        got = closed.filter(pl.col("key") == ip)["top_endpoints"].item().to_list()
        assert [(e["endpoint"], e["n"]) for e in got] == want, ip
