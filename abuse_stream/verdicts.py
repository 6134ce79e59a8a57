"""Verdicts: detections -> verdict records (contracts §3) and IP-list changes (contracts §4).

The :class:`VerdictBook` remembers, in event time, which (client, bot type) pairs already have a
live verdict and which IP-list entries it created, so that:

* a client gets one verdict per bot type while its entry is active (no repeat every window step);
  if it keeps going, its entry is *extended* once half its lifetime has passed;
* an entry removed by hand (``abuse-stream lists remove``) is forgotten, so renewed activity re-adds it;
* a second bot type for an already listed IP *extends* the entry instead of adding a duplicate;
* when an entry's ``expires_at`` passes (event time), a ``remove`` change is emitted, followed by a
  tombstone on the compacted topic;
* a client covered by the exception list still gets its verdict (action ``monitor``, with an
  ``exception`` field naming the entry) but never a list change.

``verdict_id`` is a hash of (client key, bot type, profile, window end): the same input produces
the same id, so the store and downstream consumers deduplicate on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import polars as pl

from abuse_stream.config import BotTypeConfig
from abuse_stream.policy import ExceptionList
from abuse_stream.sinks.envelopes import dumps

LISTS = ("denylist", "graylist")


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _rfc3339(ts)


@functools.lru_cache(maxsize=8192)  # a step's verdicts share their window's start and end
def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verdict_id(key: str, bot_type: str, profile: str, window_end: float) -> str:
    raw = f"v1|{key}|{bot_type}|{profile}|{window_end:.3f}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def change_id(change: Mapping[str, Any]) -> str:
    raw = "|".join(str(change.get(k)) for k in ("list", "value", "op", "changed_at", "verdict_id", "source"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass
class ListEntry:
    list: str
    value: str
    bot_type: str
    verdict_id: str
    expires_at: float | None
    reason: str


@dataclass
class BookStats:
    verdicts: int = 0
    suppressed: int = 0
    changes: int = 0


@dataclass
class VerdictBook:
    detector_names: list[str]
    bot_types: Mapping[str, BotTypeConfig]
    active: dict[tuple[str, str], float] = field(default_factory=dict)  # (key, bot type) -> until
    entries: dict[tuple[str, str], ListEntry] = field(default_factory=dict)  # (list, ip) -> entry
    stats: BookStats = field(default_factory=BookStats)
    exceptions: ExceptionList | None = None  # analysed and reported, never listed

    def expire(self, now: float) -> list[dict[str, Any]]:
        """Drop everything that lapsed at or before event time ``now``; returns the ``remove`` changes."""
        self.active = {k: t for k, t in self.active.items() if t > now}
        changes = []
        for k, e in list(self.entries.items()):
            if e.expires_at is not None and e.expires_at <= now:
                del self.entries[k]
                changes.append(self._change(e, "remove", e.expires_at))
        return changes

    def decide(
        self,
        scored: pl.DataFrame,
        hits: pl.DataFrame,
        evidence: Callable[[str, float, float], dict[str, Any]] | None = None,
        evidence_many: Callable[[list[tuple[str, float, float]]], list[dict[str, Any]]] | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Turn detections (``scoring.detections`` rows over ``scored``) into verdicts and list changes.

        ``scored`` may span several window steps; they are taken in event-time order, and entries
        that lapse between steps are removed (and reported) before the next step's detections.
        ``evidence(key, window_start, window_end)`` returns the requests behind a verdict;
        ``evidence_many`` does the same for a list of such triples at once (one call per decision
        round instead of one per verdict; used instead of ``evidence`` when given).
        """
        verdicts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        if hits.height == 0:
            return verdicts, changes
        # every hit in event-time order, with what the repeat check needs (most hits of a large
        # population are repeats: clients still listed); whole rows only for the others
        hits = hits.with_columns(pl.col("row").cast(pl.UInt32))  # as scored.with_row_index
        light = (
            hits.select("row", "bot_type", "duration_s")
            .join(
                scored.select("key", "ip", "window_end", "last_ts").with_row_index("row"),
                on="row",
                how="left",
            )
            .sort("window_end", "key", "bot_type")
        )
        ordered = light.select("row", "bot_type", "duration_s", "key", "ip", "window_end", "last_ts").rows()
        # a pair listed beyond its step's end at the start stays a repeat (expiry removes entries
        # that end by the step being decided, later verdicts only add or extend)
        new = [
            (i, bt) for i, bt, _, key, _, end, _ in ordered if self.active.get((key, bt), -math.inf) <= end
        ]
        hit_of = {
            (h["row"], h["bot_type"]): h
            for h in hits.join(
                pl.DataFrame(new, schema=hits.select("row", "bot_type").schema, orient="row"),
                on=["row", "bot_type"],
                how="semi",
            ).iter_rows(named=True)
        }
        used = set(_ROW_FIELDS) | {f"{d}__{c}" for d in self.detector_names for c in _FindingKeys._fields}
        rows = (
            scored.select(c for c in scored.columns if c in used)  # only what is read below
            .with_row_index("row")
            .filter(pl.col("row").is_in(pl.Series([i for i, _ in new], dtype=pl.UInt32).implode()))
        )
        by_row = {r["row"]: r for r in rows.iter_rows(named=True)}
        current_end = None
        wanted: list[tuple[str, float, float]] = []  # evidence_many: one triple per verdict, in order
        for i, bt, duration, key, ip, end, last_ts in ordered:
            window_end = float(end)
            if window_end != current_end:
                changes += self.expire(window_end)
                current_end = window_end
            detected_at = float(last_ts)
            if self.active.get((key, bt), -math.inf) > detected_at:
                self.stats.suppressed += 1
                changes += self._extend_if_due(ip, bt, detected_at, float(duration))
                continue
            r = by_row[i]
            h = hit_of[(i, bt)]
            window_start = float(r["window_start"])
            action = h["action"]
            excepted = self.exceptions.match(r["ip"], detected_at) if self.exceptions is not None else None
            if excepted is not None:
                action = "monitor"
            expires = None if action == "monitor" else detected_at + float(h["duration_s"])
            vid = verdict_id(key, bt, h["profile"], window_end)
            dets = self._detector_entries(r, bt)
            verdict = {
                "verdict_id": vid,
                "ip": r["ip"],
                "session": r["session"] if key != r["ip"] else None,
                "bot_type": bt,
                "confidence": round(float(h["confidence"]), 4),
                "action": action,
                "profile": h["profile"],
                "tolerance": h["tolerance"],
                "detected_at": rfc3339(detected_at),
                "expires_at": rfc3339(expires),
                "window": {
                    "start": rfc3339(window_start),
                    "end": rfc3339(window_end),
                    "requests": int(r["requests"]),
                },
                "detectors": dets,
                "application": r["host"],
            }
            if excepted is not None:
                verdict["exception"] = excepted.describe()
            if evidence_many is not None:
                wanted.append((key, window_start, window_end))
            elif evidence is not None:
                _attach_evidence(verdict, evidence(key, window_start, window_end))
            verdicts.append(verdict)
            self.stats.verdicts += 1
            self.active[(key, bt)] = expires if expires is not None else detected_at + float(h["duration_s"])
            if action != "monitor":
                changes.append(self._list(r["ip"], action, bt, vid, expires, detected_at, dets))
        if evidence_many is not None and wanted:  # "evidence" is the last key either way
            for verdict, ev in zip(verdicts, evidence_many(wanted), strict=True):
                _attach_evidence(verdict, ev)
        return verdicts, changes

    # -- internals -------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The live state (what is listed, what would be a repeat) as stable JSON, stored per input
        partition beside its positions so that the partition's next owner goes on from here."""
        # written with every batch that changed the book, so its cost matters: keys are unique, so
        # sorting the keys sorts the rows; no dataclasses.astuple (a deep copy per entry)
        return dumps(
            {
                "active": [(k, bt, self.active[k, bt]) for k, bt in sorted(self.active)],
                "entries": [
                    (e.list, e.value, e.bot_type, e.verdict_id, e.expires_at, e.reason)
                    for e in map(self.entries.__getitem__, sorted(self.entries))
                ],
            }
        )

    def restore(self, blob: bytes) -> None:
        """Go on from a :meth:`snapshot`."""
        state: dict[str, Any] = json.loads(blob)
        self.active = {(k, bt): float(until) for k, bt, until in state["active"]}
        self.entries = {}
        for row in state["entries"]:
            e = ListEntry(*row)
            self.entries[(e.list, e.value)] = e

    @property
    def version(self) -> tuple[int, ...]:
        """Changes whenever the live state does (a cheap test for "store the snapshot again?")."""
        return (self.stats.verdicts, self.stats.changes, len(self.active), len(self.entries))

    def _extend_if_due(self, ip: str, bt: str, now: float, duration: float) -> list[dict[str, Any]]:
        """Still at it while listed: extend the entry (no new verdict) once half its lifetime has passed."""
        out = []
        for lst in LISTS:
            e = self.entries.get((lst, ip))
            if e is None or e.expires_at is None or e.expires_at - now > duration / 2:
                continue
            e.expires_at = now + duration
            for b in self.bot_types:
                if (ip, b) in self.active:
                    self.active[(ip, b)] = max(self.active[(ip, b)], e.expires_at)
            out.append(self._change(e, "extend", now))
        return out

    def forget_removed(self, listed: set[tuple[str, str]]) -> int:
        """Drop entries no longer listed in the store (removed by hand): renewed activity re-adds them."""
        gone = [k for k in self.entries if k not in listed]
        for k in gone:
            del self.entries[k]
        if gone:
            values = {value for _lst, value in gone}
            self.active = {k: t for k, t in self.active.items() if k[0] not in values}
        return len(gone)

    def _detector_entries(self, r: Mapping[str, Any], bt: str) -> list[dict[str, Any]]:
        votes = self.bot_types[bt].votes
        out = []
        for d, k in _finding_keys(tuple(self.detector_names)):
            types = r.get(k.fired_types)
            fired = bool(r[k.fired])
            counted = fired and (types is None or bt in types) and votes.get(d, 0) > 0
            out.append(
                {
                    "name": d,
                    "fired": fired,
                    "value": _num(r[k.value]),
                    "baseline": _num(r[k.baseline]),
                    "threshold": _num(r[k.threshold]),
                    "votes": votes.get(d, 0),
                    "counted": counted,
                    "worked": bool(r[k.worked]),
                    "detail": r.get(k.detail),
                }
            )
        return out

    def _list(
        self,
        ip: str,
        lst: str,
        bt: str,
        vid: str,
        expires: float | None,
        now: float,
        dets: list[dict[str, Any]],
    ) -> dict[str, Any]:
        fired = ", ".join(d["name"] for d in dets if d["counted"]) or "-"
        reason = f"{bt}: {fired}"
        existing = self.entries.get((lst, ip))
        if existing is not None and (existing.expires_at is None or existing.expires_at > now):
            if existing.expires_at is not None and (expires is None or expires > existing.expires_at):
                existing.expires_at = expires
            existing.verdict_id, existing.bot_type, existing.reason = vid, bt, reason
            return self._change(existing, "extend", now)
        entry = ListEntry(list=lst, value=ip, bot_type=bt, verdict_id=vid, expires_at=expires, reason=reason)
        self.entries[(lst, ip)] = entry
        return self._change(entry, "add", now)

    def _change(self, e: ListEntry, op: str, at: float) -> dict[str, Any]:
        self.stats.changes += 1
        return {
            "list": e.list,
            "value": e.value,
            "op": op,
            "expires_at": rfc3339(e.expires_at),
            "reason": e.reason,
            "bot_type": e.bot_type,
            "verdict_id": e.verdict_id,
            "source": "detector",
            "changed_at": rfc3339(at),
        }


_ROW_FIELDS = ("key", "ip", "session", "host", "window_start", "window_end", "last_ts", "requests")


class _FindingKeys(NamedTuple):
    fired_types: str
    fired: str
    value: str
    baseline: str
    threshold: str
    worked: str
    detail: str


@functools.cache
def _finding_keys(detectors: tuple[str, ...]) -> list[tuple[str, _FindingKeys]]:
    """Each detector's finding columns (``<detector>__<field>``), named once, not per verdict."""
    return [(d, _FindingKeys(*(f"{d}__{f}" for f in _FindingKeys._fields))) for d in detectors]


def _attach_evidence(verdict: dict[str, Any], ev: dict[str, Any]) -> None:
    if ev:
        ev["first_request"] = rfc3339(ev["first_request"])
        ev["last_request"] = rfc3339(ev["last_request"])
        verdict["evidence"] = ev


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return round(f, 4) if math.isfinite(f) else None  # NaN / infinity (overflowing hostile input) -> null
