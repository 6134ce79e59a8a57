"""Calibration: propose votes per bot type, and check the tolerance levels, from labelled replays.

Input: the *findings* of a replay (``replay --findings-out``: one row per client key and window step
with ``key``, ``ip``, ``bucket``, ``window_end`` and per detector ``<name>__fired``, ``<name>__worked``,
``<name>__value``, optionally ``<name>__fired_types``) and the labels of the replayed traffic (``ip``,
``kind``, ``is_bot``, ``bot_type``; see :mod:`abuse_stream.simulate`).

Per bot type, deliberately simple and explainable:

1. **Samples.** Positives: the rows of IPs labelled with that bot type. Negatives: the rows of
   legitimate IPs (``negatives="legit"``, the default) or of every IP not of that bot type
   (``negatives="all"``). IPs without a label are ignored.
2. **Features.** One binary feature per detector: it fired *and* worked for the row (and, when the
   detector reports ``fired_types``, the firing supports this bot type) -- exactly what earns votes in
   :mod:`abuse_stream.scoring`.
3. **Fit.** An L2-regularised ``LogisticRegression(C=C, class_weight="balanced")`` (deterministic
   lbfgs, ``random_state=0``; L2 is the default penalty -- ``penalty="l2"`` is not passed because
   scikit-learn >= 1.8 deprecates the argument). scikit-learn has no non-negativity constraint for
   logistic regression, so negative coefficients are **clipped to 0**: a vote can only add evidence
   (confidence = votes gained / votes possible, and the config rejects negative votes). A negative
   coefficient means "firing is evidence *against* this bot type"; such a detector gets no vote for
   it and is named in the report.
4. **Votes.** Coefficients scaled by the largest and rounded to integers ``0..max_votes`` (5): the top
   detector gets ``max_votes``, one ~10x weaker rounds to 0.
5. **Threshold.** With those integer votes, each row gets the pipeline's confidence and each client (IP)
   its highest confidence over the replay. The threshold is the lowest confidence at which the share
   of negative *clients* reaching it stays within ``fp_budget`` (default 0.001); the report gives the
   recall there, and for every configured tolerance level its recall and false-positive rate. The
   suggested level (to set for this bot type in the profiles) is the one with the best recall within
   the budget -- the strictest of equals, as it does the same here with less risk elsewhere.

The result is written as a YAML file with a ``detection:`` section (``tolerance_levels`` as given,
``bot_types.<bt>.votes`` naming every detector, 0 included, so it overrides the defaults when used as
``--config``) and the fit described in comments. It is a *proposal to review*, never adopted
automatically. The fit is in-sample: the AUCs are measured on the rows it was fitted on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import yaml

__all__ = [
    "BotTypeFit",
    "Calibration",
    "calibrate",
    "calibrate_files",
    "detectors_in",
    "load_findings",
]

Negatives = Literal["legit", "all"]
DEFAULT_TOLERANCE_LEVELS: dict[str, float] = {"low": 0.3, "normal": 0.5, "high": 0.8}


@dataclass(frozen=True)
class LevelStats:
    level: float
    recall: float  # share of positive clients reaching the level
    fp_rate: float  # share of negative clients reaching the level
    ok: bool  # fp_rate within the budget


@dataclass(frozen=True)
class BotTypeFit:
    bot_type: str
    votes: dict[str, int]  # detector -> proposed votes (every detector of the findings)
    coefficients: dict[str, float]  # raw logistic-regression coefficients (before clipping)
    clipped: list[str]  # detectors whose negative coefficient was clipped to 0
    pos_rows: int
    neg_rows: int
    pos_clients: int
    neg_clients: int
    threshold: float | None  # lowest confidence meeting the FP budget (None: nothing to act on)
    recall: float | None  # client-level recall at the threshold
    fp_rate: float | None  # client-level false-positive rate at the threshold
    tolerance: str | None  # suggested tolerance level: best recall within the budget, strictest of equals
    # every threshold in (threshold_above, threshold] gives the same result: confidences are discrete
    threshold_above: float = 0.0
    levels: dict[str, LevelStats] = field(default_factory=dict)
    auc_rows: float | None = None  # in-sample ROC AUC of the fitted model on rows
    auc_clients: float | None = None  # in-sample ROC AUC of the integer-vote confidence per client
    note: str = ""


@dataclass(frozen=True)
class Calibration:
    fits: dict[str, BotTypeFit]
    tolerance_levels: dict[str, float]
    detectors: list[str]
    kept: dict[str, dict[str, float]]  # bot types not fitted (no labelled IPs): votes kept as given
    fp_budget: float
    C: float
    max_votes: int
    negatives: str
    rows: int  # findings rows used (labelled IPs)
    clients: int  # labelled IPs seen in the findings
    source: str = ""
    generated_at: str = ""

    def detection(self) -> dict[str, Any]:
        """The proposed config section: ``{"detection": {"tolerance_levels": ..., "bot_types": ...}}``."""
        bot_types: dict[str, Any] = {}
        for bt in sorted({*self.fits, *self.kept}):
            votes = self.fits[bt].votes if bt in self.fits else self.kept[bt]
            bot_types[bt] = {"votes": dict(votes)}
        return {"detection": {"tolerance_levels": dict(self.tolerance_levels), "bot_types": bot_types}}

    def to_yaml(self) -> str:
        """The reviewable YAML: header, the ``detection:`` section and the fit as comments."""
        return _render_yaml(self)


# -- input ---------------------------------------------------------------------------------------------


def load_findings(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a findings parquet file (``replay --findings-out``)."""
    return pl.read_parquet(os.fspath(path))


def detectors_in(findings: pl.DataFrame) -> list[str]:
    """Detector names: the prefixes of the ``<name>__fired`` columns, sorted."""
    return sorted(c.removesuffix("__fired") for c in findings.columns if c.endswith("__fired"))


def _features(findings: pl.DataFrame, detectors: list[str], bot_type: str) -> pl.DataFrame:
    """One Boolean column per detector: fired & worked (& the firing supports ``bot_type``)."""
    exprs = []
    for d in detectors:
        e = pl.col(f"{d}__fired").fill_null(False)
        if f"{d}__worked" in findings.columns:
            e = e & pl.col(f"{d}__worked").fill_null(False)
        if f"{d}__fired_types" in findings.columns:
            types = pl.col(f"{d}__fired_types")
            e = e & (types.is_null() | types.list.contains(pl.lit(bot_type)).fill_null(False))
        exprs.append(e.alias(d))
    return findings.select(exprs)


def _worked(findings: pl.DataFrame, detectors: list[str]) -> pl.DataFrame:
    return findings.select(
        (
            pl.col(f"{d}__worked").fill_null(False) if f"{d}__worked" in findings.columns else pl.lit(True)
        ).alias(d)
        for d in detectors
    )


# -- fitting -------------------------------------------------------------------------------------------


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


def _to_votes(coef: dict[str, float], max_votes: int) -> dict[str, int]:
    top = max((c for c in coef.values() if c > 0), default=0.0)
    if top <= 0:
        return dict.fromkeys(coef, 0)
    # round half up (not to even), so the result does not depend on floating-point ties
    return {d: int(math.floor(max_votes * max(c, 0.0) / top + 0.5)) for d, c in coef.items()}


def _confidence(fired: np.ndarray, worked: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """The pipeline's confidence per row: votes gained / votes possible over the detectors that worked;
    0 when nothing was gained (the pipeline never acts on zero votes)."""
    gained = (fired & worked).astype(float) @ votes
    possible = worked.astype(float) @ votes
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = np.where((possible > 0) & (gained > 0), gained / np.where(possible > 0, possible, 1.0), 0.0)
    return conf


def _fit_one(
    bot_type: str,
    findings: pl.DataFrame,
    detectors: list[str],
    tolerance_levels: dict[str, float],
    *,
    negatives: Negatives,
    fp_budget: float,
    C: float,
    max_votes: int,
) -> BotTypeFit:
    from sklearn.linear_model import LogisticRegression

    pos_mask = (findings["is_bot"] & (findings["bot_type"] == bot_type).fill_null(False)).to_numpy()
    if negatives == "legit":
        neg_mask = (~findings["is_bot"]).to_numpy()
    else:
        neg_mask = ~pos_mask
    use = pos_mask | neg_mask
    sub = findings.filter(pl.Series(use))
    y = pos_mask[use].astype(int)
    fired = _features(sub, detectors, bot_type).to_numpy().astype(bool)
    worked = _worked(sub, detectors).to_numpy().astype(bool)
    ips = sub["ip"]
    pos_clients = ips.filter(pl.Series(y == 1)).n_unique()
    neg_clients = ips.filter(pl.Series(y == 0)).n_unique()

    empty = BotTypeFit(
        bot_type=bot_type,
        votes=dict.fromkeys(detectors, 0),
        coefficients=dict.fromkeys(detectors, 0.0),
        clipped=[],
        pos_rows=int(y.sum()),
        neg_rows=int((1 - y).sum()),
        pos_clients=pos_clients,
        neg_clients=neg_clients,
        threshold=None,
        recall=None,
        fp_rate=None,
        tolerance=None,
    )
    if not detectors:
        return _replace(empty, note="the findings have no detector columns")
    if pos_clients == 0 or neg_clients == 0:
        return _replace(empty, note="no positive or no negative rows: not fitted")
    X = fired.astype(float)
    # L2 penalty: the default in every scikit-learn version (passing penalty="l2" warns from 1.8 on)
    lr = LogisticRegression(C=C, class_weight="balanced", solver="lbfgs", max_iter=1000, random_state=0)
    lr.fit(X, y)
    raw = {d: float(c) for d, c in zip(detectors, lr.coef_[0], strict=True)}
    clipped = [d for d, c in raw.items() if c < 0]
    votes = _to_votes(raw, max_votes)
    auc_rows = _auc(y, lr.decision_function(X))

    # client level: the highest confidence each IP reached with the integer votes
    conf = _confidence(fired, worked, np.array([votes[d] for d in detectors], dtype=float))
    clients = (
        pl.DataFrame({"ip": ips, "y": y, "conf": conf})
        .group_by("ip")
        .agg(pl.col("y").max(), pl.col("conf").max())
        .sort("ip")
    )
    cy = clients["y"].to_numpy()
    cc = clients["conf"].to_numpy()
    auc_clients = _auc(cy, cc)
    pos_c, neg_c = cc[cy == 1], cc[cy == 0]

    def at(t: float) -> tuple[float, float]:
        hit = lambda v: (v > 0) & (v >= t - 1e-9)  # noqa: E731 - the pipeline's rule (scoring.detections)
        return float(hit(pos_c).mean()), float(hit(neg_c).mean())

    threshold = recall = fp_rate = None
    above = 0.0
    note = ""
    for t in np.unique(cc[cc > 0]):  # ascending
        r, f = at(float(t))
        if f <= fp_budget + 1e-12:
            threshold, recall, fp_rate = round(float(t), 4), r, f
            break
        above = round(float(t), 4)
    if not any(votes.values()):
        note = "no detector is evidence for this bot type (every coefficient <= 0 or rounds to 0)"
    elif threshold is None:
        note = f"no confidence level keeps the false-positive rate within {fp_budget:g}"
    elif recall == 0:
        note = "within the false-positive budget nothing of this bot type is caught"

    levels: dict[str, LevelStats] = {}
    for name, lv in sorted(tolerance_levels.items(), key=lambda kv: kv[1]):
        r, f = at(lv)
        levels[name] = LevelStats(lv, r, f, f <= fp_budget + 1e-12)
    # suggested level: the best recall within the budget; among equals the strictest (highest) level,
    # which gives the same result here and fewer surprises on traffic the fit has not seen
    ok_levels = [(s.recall, s.level, n) for n, s in levels.items() if s.ok]
    tolerance = max(ok_levels)[2] if ok_levels and any(votes.values()) else None
    return BotTypeFit(
        bot_type=bot_type,
        votes=votes,
        coefficients=raw,
        clipped=clipped,
        pos_rows=int(y.sum()),
        neg_rows=int((1 - y).sum()),
        pos_clients=pos_clients,
        neg_clients=neg_clients,
        threshold=threshold,
        recall=recall,
        fp_rate=fp_rate,
        tolerance=tolerance,
        threshold_above=above,
        levels=levels,
        auc_rows=auc_rows,
        auc_clients=auc_clients,
        note=note,
    )


def _replace(fit: BotTypeFit, **changes: Any) -> BotTypeFit:
    import dataclasses

    return dataclasses.replace(fit, **changes)


def calibrate(
    findings: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    fp_budget: float = 0.001,
    C: float = 1.0,
    max_votes: int = 5,
    negatives: Negatives = "legit",
    bot_types: list[str] | None = None,
    tolerance_levels: dict[str, float] | None = None,
    base_votes: dict[str, dict[str, float]] | None = None,
    source: str = "",
    now: datetime | None = None,
) -> Calibration:
    """Fit votes per bot type (see the module docstring).

    ``bot_types``: which to fit (default: every ``bot_type`` in the labels). ``tolerance_levels``: the
    levels to judge and write (default: the shipped ones). ``base_votes``: bot type -> votes of the
    current config, written unchanged for bot types without labelled IPs (default: the shipped
    defaults). ``now`` fixes the timestamp in the header (for reproducible files).
    """
    if not 0 <= fp_budget < 1:
        raise ValueError(f"fp_budget must be in [0, 1), got {fp_budget}")
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    if max_votes < 1:
        raise ValueError(f"max_votes must be >= 1, got {max_votes}")
    if negatives not in ("legit", "all"):
        raise ValueError(f"negatives must be 'legit' or 'all', got {negatives!r}")
    if "ip" not in findings.columns:
        raise ValueError("findings lack the ip column")

    from abuse_stream.evaluate import _normalise_labels

    labels = _normalise_labels(labels)
    if tolerance_levels is None or base_votes is None:
        shipped = _shipped_detection()
        if tolerance_levels is None:
            tolerance_levels = {k: float(v) for k, v in (shipped.get("tolerance_levels") or {}).items()}
            tolerance_levels = tolerance_levels or dict(DEFAULT_TOLERANCE_LEVELS)
        if base_votes is None:
            base_votes = {
                bt: dict((conf or {}).get("votes") or {})
                for bt, conf in (shipped.get("bot_types") or {}).items()
            }

    detectors = detectors_in(findings)
    joined = findings.with_columns(pl.col("ip").cast(pl.String)).join(
        labels.select("ip", "is_bot", "bot_type"), on="ip", how="inner"
    )
    wanted = bot_types or sorted(joined.filter(pl.col("is_bot"))["bot_type"].drop_nulls().unique().to_list())
    fits = {
        bt: _fit_one(
            bt,
            joined,
            detectors,
            tolerance_levels,
            negatives=negatives,
            fp_budget=fp_budget,
            C=C,
            max_votes=max_votes,
        )
        for bt in sorted(wanted)
    }
    kept = {bt: dict(v) for bt, v in sorted(base_votes.items()) if bt not in fits}
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Calibration(
        fits=fits,
        tolerance_levels=dict(tolerance_levels),
        detectors=detectors,
        kept=kept,
        fp_budget=fp_budget,
        C=C,
        max_votes=max_votes,
        negatives=negatives,
        rows=joined.height,
        clients=joined["ip"].n_unique(),
        source=source,
        generated_at=stamp,
    )


def _shipped_detection() -> dict[str, Any]:
    try:
        from abuse_stream.config import default_detection

        return default_detection() or {}
    except Exception:  # the defaults are a convenience here, not a requirement
        return {"tolerance_levels": dict(DEFAULT_TOLERANCE_LEVELS), "bot_types": {}}


# -- output --------------------------------------------------------------------------------------------


def _f(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _dump(obj: Any, indent: int) -> list[str]:
    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return [" " * indent + line for line in text.splitlines()]


def _render_yaml(cal: Calibration) -> str:
    import sklearn

    out = [
        "# PROPOSED detection votes -- a proposal to review, NOT adopted automatically.",
        f"# Fitted by `abuse-stream calibrate` at {cal.generated_at}"
        + (f" from {cal.source}" if cal.source else "")
        + ".",
        f"# Samples: {cal.rows} findings rows (client x window step) of {cal.clients} labelled IPs;"
        f" detectors: {', '.join(cal.detectors) or 'none'}.",
        f"# Method: per bot type, LogisticRegression(L2, C={cal.C:g}, class_weight=balanced,"
        f" random_state=0; scikit-learn {sklearn.__version__}) on 'fired and worked' per detector;",
        "# positives = rows of IPs labelled with the bot type, negatives = rows of "
        + ("legitimate IPs" if cal.negatives == "legit" else "every other labelled IP")
        + ". Negative coefficients are clipped to 0",
        f"# (a vote can only add evidence); votes = coefficient / largest x {cal.max_votes}, rounded."
        f" Thresholds: lowest confidence",
        f"# (votes gained / votes possible) with at most {cal.fp_budget:.2%} of negative IPs reaching it.",
        "# AUCs are in-sample (measured on the rows fitted). To adopt: review, then copy into your config",
        "# (or pass this file as --config) and set the suggested tolerance per bot type in your profiles.",
        "# Every detector is named, 0 votes included, so these votes replace the defaults when merged.",
        "",
        "detection:",
        "  tolerance_levels:",
        *_dump(cal.tolerance_levels, 4),
        "  bot_types:",
    ]
    for bt, section in cal.detection()["detection"]["bot_types"].items():
        out.append("")
        fit = cal.fits.get(bt)
        if fit is None:
            out.append(f"    # {bt}: not fitted (no labelled IPs of this type); votes kept as configured")
        else:
            out += [f"    # {line}" for line in _describe(fit, cal.fp_budget)]
        out.append(f"    {bt}:")
        out += _dump(section, 6)
    return "\n".join(out) + "\n"


def _describe(fit: BotTypeFit, budget: float) -> list[str]:
    lines = [
        f"{fit.bot_type}: {fit.pos_rows} positive rows ({fit.pos_clients} IPs), {fit.neg_rows} negative rows"
        f" ({fit.neg_clients} IPs); AUC rows {_f(fit.auc_rows)}, IPs {_f(fit.auc_clients)}",
        "coefficients: " + (", ".join(f"{d} {c:+.3f}" for d, c in fit.coefficients.items()) or "none"),
    ]
    if fit.clipped:
        lines.append(f"clipped to 0 (evidence against {fit.bot_type}): {', '.join(fit.clipped)}")
    if fit.threshold is not None:
        lines.append(
            f"lowest threshold with FP <= {budget:.2%} of negative IPs: any in"
            f" ({fit.threshold_above:.3f}, {fit.threshold:.3f}] -> recall {_f(fit.recall, '.1%')},"
            f" FP {_f(fit.fp_rate, '.2%')}"
        )
    for name, s in fit.levels.items():
        lines.append(
            f"  at {name} ({s.level:g}): recall {s.recall:.1%}, FP {s.fp_rate:.2%}"
            + ("" if s.ok else "  -- over budget")
        )
    if fit.tolerance:
        lines.append(f"suggested tolerance for {fit.bot_type}: {fit.tolerance}")
    elif fit.levels and any(fit.votes.values()):
        lines.append(
            f"suggested tolerance: none of the levels keeps FP <= {budget:.2%}; review the detectors"
        )
    if fit.note:
        lines.append(f"note: {fit.note}")
    return lines


def write_yaml(cal: Calibration, path: str | os.PathLike[str]) -> None:
    Path(path).write_text(cal.to_yaml(), encoding="utf-8")


def calibrate_files(
    labels_path: str | os.PathLike[str],
    findings_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    **kwargs: Any,
) -> Calibration:
    """What ``abuse-stream calibrate`` does: load, fit, write the YAML; returns the calibration."""
    from abuse_stream.evaluate import load_labels

    kwargs.setdefault("source", f"findings {findings_path}, labels {labels_path}")
    cal = calibrate(load_findings(findings_path), load_labels(labels_path), **kwargs)
    write_yaml(cal, out_path)
    return cal
