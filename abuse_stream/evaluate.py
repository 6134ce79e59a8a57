"""Evaluation: how well did the verdicts of a replay match labelled traffic?

Input: the labels of a simulated (or hand-labelled) traffic file -- one row per client IP with ``ip``,
``kind``, ``is_bot`` and ``bot_type`` (:func:`abuse_stream.simulate.write_labels` writes them) -- and
the verdicts (contracts §3, e.g. ``replay --verdicts-out``). Optionally the traffic itself, for request
counts, request rates and time-to-detect.

Everything is counted per client IP:

* an IP is **flagged** when at least one verdict for it has an ``action`` in ``actions`` (by default
  ``denylist`` and ``graylist``: the verdicts that change what the IP may do). IPs whose verdicts are
  all outside ``actions`` (``monitor``) are counted as **monitored**, not flagged. A verdict for a CIDR
  covers every labelled IP inside it.
* **recall** of a bot kind = flagged IPs / IPs of the kind; the **false-positive rate** of a legitimate
  kind = flagged IPs / IPs of the kind. **Right type** = flagged bot IPs with a flagging verdict of the
  labelled ``bot_type``.
* **precision** = flagged bot IPs / flagged labelled IPs. Flagged IPs that are not in the labels are
  reported (``unlabelled_flagged_ips``) but not counted.
* **time-to-detect** of a flagged IP = earliest ``detected_at`` of its flagging verdicts - the event
  time of its first request (from the traffic), in event-time seconds.

The project's targets are checked as well (:attr:`Evaluation.targets`): at most 1 in 1,000
``human_browser`` IPs flagged; no ``nat_gateway``, ``uptime_monitor`` or ``search_crawler`` IP flagged;
recall >= 0.95 for every bot kind whose IPs made >= 100 requests in total (>= 0.5 for
``credential_stuffing_distributed``); median time-to-detect <= 60 s for every bot kind doing >= 1
request/s (the median over the kind's IPs of ``(requests - 1) / (last - first request time)``).
A target that cannot be judged from what was given (no traffic file, kind absent) has ``ok = None``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

__all__ = [
    "DEFAULT_ACTIONS",
    "Evaluation",
    "KindResult",
    "Target",
    "check_targets",
    "evaluate",
    "evaluate_files",
    "first_seen_from_traffic",
    "load_labels",
    "load_verdicts",
    "render",
]

DEFAULT_ACTIONS: frozenset[str] = frozenset({"denylist", "graylist"})

# targets (from the issue)
HUMAN_KIND = "human_browser"
HUMAN_MAX_BLOCKED_RATE = 0.001
NEVER_BLOCKED_KINDS: tuple[str, ...] = ("nat_gateway", "uptime_monitor", "search_crawler")
RECALL_TARGET = 0.95
RECALL_MIN_REQUESTS = 100
SPECIAL_RECALL: dict[str, float] = {"credential_stuffing_distributed": 0.5}
TTD_TARGET_S = 60.0
TTD_MIN_RATE = 1.0  # requests/s

# display order of the simulator's kinds (others follow alphabetically)
_KIND_ORDER: tuple[str, ...] = (
    "human_browser",
    "mobile_app",
    "nat_gateway",
    "partner_integration",
    "uptime_monitor",
    "search_crawler",
    "credential_stuffing_fast",
    "credential_stuffing_distributed",
    "scraper_declared",
    "scraper_stealth",
    "id_enumeration",
    "l7_flood",
    "scanner_declared",
    "scanner_masked",
    "fake_signup",
    "fake_search_crawler",
    "headless_browser",
)

_ISO_FMT = "%Y-%m-%dT%H:%M:%S%.f%#z"


# -- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindResult:
    """One actor kind. ``recall_or_fp_rate`` is recall for bots, the false-positive rate for legit kinds.
    ``requests`` is None without traffic; ``correct_type`` is 0 for legit kinds; the time-to-detect
    quantiles are over the kind's flagged IPs (None without traffic or without flagged IPs)."""

    kind: str
    is_bot: bool
    ips: int
    requests: int | None
    flagged: int
    recall_or_fp_rate: float
    correct_type: int
    median_ttd_s: float | None
    p90_ttd_s: float | None
    monitored: int = 0
    rate_rps: float | None = None  # median per-IP request rate (needs traffic)


class Target(NamedTuple):
    """One of the project's targets: a description, the measured value and whether it is met
    (None: cannot be judged from the data given)."""

    target: str
    value: float | None
    ok: bool | None


@dataclass(frozen=True)
class Evaluation:
    kinds: list[KindResult]
    precision: float  # nan when nothing labelled was flagged
    recall: float  # nan when there are no bot IPs
    bot_ips: int
    legit_ips: int
    false_positive_ips: int
    fp_by_kind: dict[str, int]
    median_ttd_s: float | None
    targets: list[Target] = field(default_factory=list)
    flagged_ips: int = 0  # labelled IPs flagged
    monitored_ips: int = 0  # labelled IPs with only non-flagging verdicts
    unlabelled_flagged_ips: int = 0
    actions: tuple[str, ...] = tuple(sorted(DEFAULT_ACTIONS))
    has_traffic: bool = False

    @property
    def targets_met(self) -> bool:
        """True when every target that could be judged is met."""
        return all(t.ok is not False for t in self.targets)


# -- loading -------------------------------------------------------------------------------------------


def load_labels(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a labels CSV (``ip, kind, is_bot, bot_type[, note]``)."""
    labels = pl.read_csv(
        os.fspath(path),
        schema_overrides={"ip": pl.String, "kind": pl.String, "bot_type": pl.String, "note": pl.String},
    )
    return _normalise_labels(labels)


def _normalise_labels(labels: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("ip", "kind", "is_bot") if c not in labels.columns]
    if missing:
        raise ValueError(f"labels lack column(s) {', '.join(missing)} (expected ip, kind, is_bot, bot_type)")
    is_bot = labels["is_bot"]
    if is_bot.dtype != pl.Boolean:
        text = is_bot.cast(pl.String).str.to_lowercase().str.strip_chars()
        is_bot = text.is_in(["true", "1", "yes", "t", "y"]).alias("is_bot")
    if "bot_type" not in labels.columns:
        labels = labels.with_columns(pl.lit(None, dtype=pl.String).alias("bot_type"))
    out = labels.with_columns(
        pl.col("ip").cast(pl.String).str.strip_chars(),
        pl.col("kind").cast(pl.String),
        is_bot,
        pl.col("bot_type").cast(pl.String),
    ).select("ip", "kind", "is_bot", "bot_type")
    dup = out["ip"].is_duplicated()
    if dup.any():
        raise ValueError(f"labels name IP {out['ip'].filter(dup)[0]!r} more than once")
    return out


def load_verdicts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read verdicts written one JSON object per line (contracts §3); blank lines are skipped."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            out.append(obj)
    return out


def first_seen_from_traffic(path: str | os.PathLike[str], fmt: str = "auto") -> pl.DataFrame:
    """Per client IP of a traffic file: ``ip``, ``first_seen`` and ``last_seen`` (event time, epoch
    seconds) and ``requests``.

    The file is read with the pipeline's own batch parser (so plain or gzip, JSON lines with ``ts`` as
    RFC 3339 or epoch seconds -- or any other input format -- and the same IP normalisation as the
    verdicts); lines the pipeline would reject are ignored.
    """
    from abuse_stream.ingest.files import read_batches
    from abuse_stream.ingest.parse import build_parser

    parser = build_parser(fmt)
    parts: list[pl.DataFrame] = []
    for batch in read_batches([os.fspath(path)]):
        recs = parser.parse(batch.lines).records
        if recs.height:
            parts.append(
                recs.group_by("ip").agg(
                    pl.col("ts").min().alias("first_seen"),
                    pl.col("ts").max().alias("last_seen"),
                    pl.len().alias("requests"),
                )
            )
    if not parts:
        return pl.DataFrame(
            schema={"ip": pl.String, "first_seen": pl.Float64, "last_seen": pl.Float64, "requests": pl.Int64}
        )
    return (
        pl.concat(parts)
        .group_by("ip")
        .agg(pl.col("first_seen").min(), pl.col("last_seen").max(), pl.col("requests").sum().cast(pl.Int64))
        .sort("ip")
    )


# -- evaluation ----------------------------------------------------------------------------------------


def _epoch(s: pl.Series) -> pl.Series:
    """detected_at values (RFC 3339 strings, epoch numbers or datetimes) -> epoch seconds (Float64)."""
    if s.dtype.is_temporal():
        return (s.cast(pl.Datetime("us", "UTC")).dt.epoch("us").cast(pl.Float64) / 1e6).alias(s.name)
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    text = s.cast(pl.String)
    num = text.cast(pl.Float64, strict=False)
    parsed = text.str.strptime(pl.Datetime("us", "UTC"), _ISO_FMT, strict=False, exact=True)
    iso = parsed.dt.epoch("us").cast(pl.Float64) / 1e6
    return num.fill_null(iso).alias(s.name)


_VERDICT_SCHEMA = {"ip": pl.String, "bot_type": pl.String, "action": pl.String, "detected_at": pl.String}


def _verdict_frame(verdicts: Sequence[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    if isinstance(verdicts, pl.DataFrame):
        missing = [c for c in ("ip", "action") if c not in verdicts.columns]
        if missing:
            raise ValueError(f"verdicts lack column(s) {', '.join(missing)}")
        frame = verdicts.select(
            pl.col("ip").cast(pl.String),
            (pl.col("bot_type") if "bot_type" in verdicts.columns else pl.lit(None))
            .cast(pl.String)
            .alias("bot_type"),
            pl.col("action").cast(pl.String),
            pl.col("detected_at") if "detected_at" in verdicts.columns else pl.lit(None, dtype=pl.String),
        )
    else:
        frame = pl.DataFrame(
            {
                "ip": [v.get("ip") for v in verdicts],
                "bot_type": [v.get("bot_type") for v in verdicts],
                "action": [v.get("action") for v in verdicts],
                "detected_at": [
                    None if v.get("detected_at") is None else str(v.get("detected_at")) for v in verdicts
                ],
            },
            schema=_VERDICT_SCHEMA,
        )
    frame = frame.with_columns(_epoch(frame["detected_at"]).alias("detected_at"))
    return frame.filter(pl.col("ip").is_not_null())


def _expand_cidrs(vf: pl.DataFrame, label_ips: Iterable[str]) -> pl.DataFrame:
    """Replace verdicts for a CIDR by one row per labelled IP inside it (single IPs stay as they are)."""
    is_net = vf["ip"].str.contains("/")
    if not is_net.any():
        return vf
    addrs = []
    for ip in label_ips:
        try:
            addrs.append((ip, ipaddress.ip_address(ip)))
        except ValueError:
            continue
    nets, members = [], []
    for cidr in vf.filter(is_net)["ip"].unique().sort().to_list():
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        for ip, a in addrs:
            if a.version == net.version and a in net:
                nets.append(cidr)
                members.append(ip)
    cover = pl.DataFrame({"cidr": nets, "member": members}, schema={"cidr": pl.String, "member": pl.String})
    expanded = (
        vf.filter(is_net)
        .join(cover, left_on="ip", right_on="cidr", how="inner")
        .with_columns(pl.col("member").alias("ip"))
        .drop("member")
    )
    return pl.concat([vf.filter(~is_net), expanded.select(vf.columns)])


def _quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default), None for no values."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _kind_key(kind: str, is_bot: bool) -> tuple[int, int, str]:
    order = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return (0 if is_bot else 1, order, kind)


def evaluate(
    labels: pl.DataFrame,
    verdicts: Sequence[dict[str, Any]] | pl.DataFrame,
    first_seen: pl.DataFrame | None = None,
    actions: Iterable[str] = DEFAULT_ACTIONS,
) -> Evaluation:
    """Score ``verdicts`` against ``labels`` per client IP (see the module docstring).

    ``first_seen``: per IP ``ip`` and ``first_seen`` (epoch seconds), optionally ``last_seen`` and
    ``requests`` -- what :func:`first_seen_from_traffic` returns; needed for time-to-detect, request
    counts and the rate-dependent targets.
    """
    actions = frozenset(actions)
    labels = _normalise_labels(labels)
    vf = _expand_cidrs(_verdict_frame(verdicts), labels["ip"].to_list())
    vf = vf.with_columns(pl.col("action").is_in(list(actions)).fill_null(False).alias("flags"))

    per_ip = vf.group_by("ip").agg(
        pl.col("flags").any().alias("flagged"),
        pl.col("detected_at").filter(pl.col("flags")).min().alias("detected_at"),
        pl.col("bot_type").filter(pl.col("flags")).unique().alias("flag_types"),
    )
    unlabelled = per_ip.filter(pl.col("flagged")).join(labels, on="ip", how="anti").height

    has_traffic = first_seen is not None
    fs = _first_seen_frame(first_seen, labels)
    df = (
        labels.join(per_ip, on="ip", how="left")
        .join(fs, on="ip", how="left")
        .with_columns(
            pl.col("flagged").fill_null(False),
            pl.col("ip").is_in(per_ip["ip"].implode()).alias("has_verdict"),
        )
        .with_columns(
            (pl.col("has_verdict") & ~pl.col("flagged")).alias("monitored"),
            (
                pl.col("flagged") & pl.col("flag_types").list.contains(pl.col("bot_type")).fill_null(False)
            ).alias("right_type"),
            pl.when(pl.col("flagged")).then(pl.col("detected_at") - pl.col("first_seen")).alias("ttd"),
            pl.when(pl.col("last_seen") > pl.col("first_seen"))
            .then((pl.col("requests") - 1) / (pl.col("last_seen") - pl.col("first_seen")))
            .otherwise(0.0)
            .alias("rate"),
        )
    )

    kinds: list[KindResult] = []
    groups = df.partition_by("kind", "is_bot", as_dict=True, maintain_order=True)
    for (kind, is_bot), g in sorted(groups.items(), key=lambda kv: _kind_key(str(kv[0][0]), bool(kv[0][1]))):
        ips = g.height
        flagged = int(g["flagged"].sum())
        ttds = [float(x) for x in g["ttd"].drop_nulls().to_list()]
        reqs = int(g["requests"].fill_null(0).sum()) if has_traffic else None
        rate = _quantile([float(x) for x in g["rate"].drop_nulls().to_list()], 0.5) if has_traffic else None
        kinds.append(
            KindResult(
                kind=str(kind),
                is_bot=bool(is_bot),
                ips=ips,
                requests=reqs,
                flagged=flagged,
                recall_or_fp_rate=flagged / ips if ips else 0.0,
                correct_type=int(g["right_type"].sum()) if is_bot else 0,
                median_ttd_s=_quantile(ttds, 0.5),
                p90_ttd_s=_quantile(ttds, 0.9),
                monitored=int(g["monitored"].sum()),
                rate_rps=rate,
            )
        )

    bots = df.filter(pl.col("is_bot"))
    legit = df.filter(~pl.col("is_bot"))
    tp = int(bots["flagged"].sum())
    fp = int(legit["flagged"].sum())
    bot_ttd = [float(x) for x in bots["ttd"].drop_nulls().to_list()]
    ev = Evaluation(
        kinds=kinds,
        precision=tp / (tp + fp) if tp + fp else math.nan,
        recall=tp / bots.height if bots.height else math.nan,
        bot_ips=bots.height,
        legit_ips=legit.height,
        false_positive_ips=fp,
        fp_by_kind={k.kind: k.flagged for k in kinds if not k.is_bot},
        median_ttd_s=_quantile(bot_ttd, 0.5),
        flagged_ips=tp + fp,
        monitored_ips=int(df["monitored"].sum()),
        unlabelled_flagged_ips=unlabelled,
        actions=tuple(sorted(actions)),
        has_traffic=has_traffic,
    )
    return Evaluation(**{**ev.__dict__, "targets": check_targets(ev)})


def _first_seen_frame(first_seen: pl.DataFrame | None, labels: pl.DataFrame) -> pl.DataFrame:
    schema = {"ip": pl.String, "first_seen": pl.Float64, "last_seen": pl.Float64, "requests": pl.Int64}
    if first_seen is None:
        return pl.DataFrame(schema=schema)
    if "ip" not in first_seen.columns or "first_seen" not in first_seen.columns:
        raise ValueError("first_seen needs columns ip and first_seen")
    cols = [pl.col("ip").cast(pl.String), _epoch(first_seen["first_seen"]).alias("first_seen")]
    cols.append(
        _epoch(first_seen["last_seen"]).alias("last_seen")
        if "last_seen" in first_seen.columns
        else pl.lit(None, dtype=pl.Float64).alias("last_seen")
    )
    cols.append(
        pl.col("requests").cast(pl.Int64)
        if "requests" in first_seen.columns
        else pl.lit(None, dtype=pl.Int64).alias("requests")
    )
    return first_seen.select(cols)


# -- targets -------------------------------------------------------------------------------------------


def check_targets(ev: Evaluation) -> list[Target]:
    """The project's targets, judged on ``ev`` (see the module docstring)."""
    by_kind = {k.kind: k for k in ev.kinds}
    out: list[Target] = []

    human = by_kind.get(HUMAN_KIND)
    out.append(
        Target(
            f"{HUMAN_KIND} IPs blocked <= 1 in 1,000",
            human.recall_or_fp_rate if human else None,
            (human.recall_or_fp_rate <= HUMAN_MAX_BLOCKED_RATE + 1e-12) if human else None,
        )
    )
    for kind in NEVER_BLOCKED_KINDS:
        k = by_kind.get(kind)
        out.append(
            Target(f"no {kind} IP blocked", float(k.flagged) if k else None, (k.flagged == 0) if k else None)
        )

    for k in ev.kinds:
        if not k.is_bot:
            continue
        if k.kind in SPECIAL_RECALL:
            need = SPECIAL_RECALL[k.kind]
            out.append(
                Target(f"recall {k.kind} >= {need:g}", k.recall_or_fp_rate, k.recall_or_fp_rate >= need)
            )
            continue
        met = k.recall_or_fp_rate >= RECALL_TARGET
        if k.requests is None:
            # without traffic we do not know whether the kind reaches 100 requests: a met target is met
            # either way, an unmet one cannot be judged
            out.append(
                Target(
                    f"recall {k.kind} >= {RECALL_TARGET:g} (if >= 100 requests)",
                    k.recall_or_fp_rate,
                    met or None,
                )
            )
        elif k.requests >= RECALL_MIN_REQUESTS:
            out.append(
                Target(
                    f"recall {k.kind} >= {RECALL_TARGET:g} ({k.requests} requests)", k.recall_or_fp_rate, met
                )
            )

    if not ev.has_traffic:
        out.append(
            Target(f"median time-to-detect <= {TTD_TARGET_S:g} s for bot kinds at >= 1 req/s", None, None)
        )
    else:
        for k in ev.kinds:
            if k.is_bot and k.rate_rps is not None and k.rate_rps >= TTD_MIN_RATE:
                ok = k.median_ttd_s is not None and k.median_ttd_s <= TTD_TARGET_S
                out.append(
                    Target(
                        f"median time-to-detect {k.kind} <= {TTD_TARGET_S:g} s ({k.rate_rps:.1f} req/s)",
                        k.median_ttd_s,
                        ok,
                    )
                )
    return out


# -- rendering -----------------------------------------------------------------------------------------


def _num(v: float | int | None, fmt: str = "{:.1f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return fmt.format(v)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.1%}"


def render(ev: Evaluation) -> str:
    """A fixed-width report: a table per kind (bots first), then the totals and the targets."""
    head = ("kind", "IPs", "requests", "flagged", "recall", "FP rate", "right type", "TTD med s", "TTD p90 s")
    rows: list[tuple[str, ...]] = []
    for k in ev.kinds:
        rows.append(
            (
                k.kind,
                str(k.ips),
                _num(k.requests, "{:d}"),
                str(k.flagged),
                _pct(k.recall_or_fp_rate) if k.is_bot else "",
                "" if k.is_bot else _pct(k.recall_or_fp_rate),
                str(k.correct_type) if k.is_bot else "",
                _num(k.median_ttd_s),
                _num(k.p90_ttd_s),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    bots_done = False
    for k, r in zip(ev.kinds, rows, strict=True):
        if not k.is_bot and not bots_done:
            bots_done = True
            if any(x.is_bot for x in ev.kinds):
                out.append("")
        out.append(line(r))
    out.append("")
    flagged_by = "/".join(ev.actions)
    out.append(f"flagged = at least one {flagged_by} verdict; monitored only: {ev.monitored_ips} IPs")
    out.append(
        f"precision {_pct(ev.precision)}   recall {_pct(ev.recall)}   "
        f"({ev.bot_ips} bot IPs, {ev.legit_ips} legitimate IPs, {ev.false_positive_ips} false-positive IPs)"
    )
    if ev.unlabelled_flagged_ips:
        out.append(f"flagged IPs not in the labels (not counted): {ev.unlabelled_flagged_ips}")
    out.append(
        "median time-to-detect (bots): "
        + (f"{ev.median_ttd_s:.1f} s" if ev.median_ttd_s is not None else "n/a (pass the traffic file)")
    )
    out.append(
        "false-positive IPs by kind: "
        + (", ".join(f"{k} {n}" for k, n in ev.fp_by_kind.items()) if ev.fp_by_kind else "none")
    )
    out.append("")
    out.append("targets:")
    for t in ev.targets:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[t.ok]
        if t.value is None:
            value = "none detected" if t.ok is False else "n/a"
        else:
            value = f"{t.value:.4g}"
        out.append(f"  [{mark:>7}] {t.target}: {value}")
    met = sum(t.ok is True for t in ev.targets)
    missed = sum(t.ok is False for t in ev.targets)
    unknown = sum(t.ok is None for t in ev.targets)
    out.append(f"  {met} met, {missed} not met, {unknown} unknown")
    return "\n".join(out) + "\n"


def evaluate_files(
    labels_path: str | Path, verdicts_path: str | Path, traffic_path: str | Path | None = None
) -> Evaluation:
    """Load the files and evaluate (what ``abuse-stream evaluate`` does before printing)."""
    fs = first_seen_from_traffic(traffic_path) if traffic_path else None
    return evaluate(load_labels(labels_path), load_verdicts(verdicts_path), fs)
