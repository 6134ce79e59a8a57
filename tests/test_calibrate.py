"""calibrate: labelled findings -> proposed votes per bot type, thresholds, a reviewable YAML."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import yaml

from abuse_stream.calibrate import calibrate, calibrate_files, detectors_in

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _synthetic(
    a: str = "a",
    b: str = "b",
    n_bots: int = 30,
    n_legit: int = 300,
    steps: int = 8,
    seed: int = 1,
    legit_a_fires: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Detector ``a`` fires on every row of every scraping bot and never for legit IPs (except the first
    ``legit_a_fires`` legit IPs, once each); ``b`` fires at random (30 %) on everyone."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n_bots + n_legit):
        ip = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
        bot = i < n_bots
        labels.append((ip, "scraper_stealth" if bot else "human_browser", bot, "scraping" if bot else None))
        for s in range(steps):
            fired_a = bot or (i - n_bots < legit_a_fires and s == 0)
            fired_b = bool(rng.random() < 0.3)
            rows.append(
                {
                    "key": ip,
                    "ip": ip,
                    "bucket": s,
                    "window_end": 1_793_491_200.0 + 10 * s,
                    f"{a}__fired": fired_a,
                    f"{a}__worked": True,
                    f"{a}__value": float(fired_a),
                    f"{b}__fired": fired_b,
                    f"{b}__worked": True,
                    f"{b}__value": float(rng.random()),
                }
            )
    findings = pl.DataFrame(rows)
    lab = pl.DataFrame(
        labels,
        schema={"ip": pl.String, "kind": pl.String, "is_bot": pl.Boolean, "bot_type": pl.String},
        orient="row",
    )
    return findings, lab


def test_separating_detector_gets_the_top_vote_noise_none() -> None:
    findings, labels = _synthetic()
    cal = calibrate(findings, labels, now=NOW)
    assert cal.detectors == ["a", "b"]
    fit = cal.fits["scraping"]
    assert fit.votes["a"] == 5
    assert fit.votes["b"] == 0
    assert fit.coefficients["a"] > 1.0
    assert abs(fit.coefficients["b"]) < 0.5
    assert (fit.pos_clients, fit.neg_clients) == (30, 300)
    assert (fit.pos_rows, fit.neg_rows) == (240, 2400)
    assert fit.recall == 1.0 and fit.fp_rate == 0.0
    assert fit.threshold == 1.0
    assert fit.auc_clients == pytest.approx(1.0)
    assert fit.tolerance == "high"  # all levels equal here: the strictest
    assert set(cal.fits) == {"scraping"}


def test_yaml_shape_and_header(tmp_path) -> None:
    findings, labels = _synthetic()
    cal = calibrate(findings, labels, now=NOW, source="unit test")
    text = cal.to_yaml()
    assert text.startswith("#")
    header = text.split("detection:")[0].lower()
    assert "proposal to review" in header and "not adopted automatically" in header
    assert "2026-11-02T12:00:00Z" in text and "unit test" in text
    assert "AUC" in text
    data = yaml.safe_load(text)
    assert set(data) == {"detection"}
    det = data["detection"]
    assert set(det) == {"bot_types", "tolerance_levels"}
    assert set(det["tolerance_levels"]) >= {"low", "normal", "high"}
    assert det["bot_types"]["scraping"] == {"votes": {"a": 5, "b": 0}}
    assert data == cal.detection()
    for conf in det["bot_types"].values():
        assert set(conf) == {"votes"}
        assert all(isinstance(v, int | float) and v >= 0 for v in conf["votes"].values())


def test_output_is_a_valid_config_overriding_the_defaults(tmp_path) -> None:
    from abuse_stream.config import build_config, default_detection

    findings, labels = _synthetic(a="bad_user_agent", b="request_rate")
    findings.write_parquet(tmp_path / "findings.parquet")
    labels.with_columns(pl.lit("").alias("note")).write_csv(tmp_path / "labels.csv")
    out = tmp_path / "proposed.yaml"
    cal = calibrate_files(tmp_path / "labels.csv", tmp_path / "findings.parquet", out, now=NOW)
    cfg = build_config(yaml.safe_load(out.read_text()))
    votes = cfg.detection.bot_types["scraping"].votes
    # the fitted detectors: request_rate: 0 overrides its default vote; detectors absent from the
    # findings keep their shipped votes
    assert (votes["bad_user_agent"], votes["request_rate"]) == (5, 0)
    # bot types without labelled IPs keep the configured votes
    shipped = default_detection()["bot_types"]
    assert cfg.detection.bot_types["security_crawlers"].votes == shipped["security_crawlers"]["votes"]
    assert "security_crawlers" in cal.kept


def test_deterministic() -> None:
    findings, labels = _synthetic()
    first = calibrate(findings, labels, now=NOW).to_yaml()
    assert calibrate(findings, labels, now=NOW).to_yaml() == first
    shuffled = findings.sample(fraction=1.0, shuffle=True, seed=3)
    again = calibrate(shuffled, labels.reverse(), now=NOW)
    assert again.fits["scraping"].votes == {"a": 5, "b": 0}
    assert again.fits["scraping"].threshold == 1.0


def test_negative_coefficient_is_clipped() -> None:
    findings, labels = _synthetic()
    # c fires on every legit row and never for bots: evidence against
    findings = findings.join(labels.select("ip", "is_bot"), on="ip").with_columns(
        (~pl.col("is_bot")).alias("c__fired"), pl.lit(True).alias("c__worked"), pl.lit(0.0).alias("c__value")
    )
    fit = calibrate(findings.drop("is_bot"), labels, now=NOW).fits["scraping"]
    assert fit.coefficients["c"] < 0
    assert fit.clipped == ["c"]
    assert fit.votes["c"] == 0
    assert fit.votes["a"] == 5


def test_false_positive_budget_sets_the_threshold() -> None:
    # a also fires once for 2 of the 300 legit IPs (0.67 %)
    findings, labels = _synthetic(legit_a_fires=2)
    strict = calibrate(findings, labels, fp_budget=0.001, now=NOW).fits["scraping"]
    assert strict.votes["a"] == 5
    assert strict.threshold is None  # any confidence that catches a bot also catches those 2
    assert strict.tolerance is None
    assert all(not s.ok for s in strict.levels.values())
    assert "no confidence level" in strict.note
    loose = calibrate(findings, labels, fp_budget=0.01, now=NOW).fits["scraping"]
    assert loose.threshold is not None and loose.recall == 1.0
    assert loose.fp_rate == pytest.approx(2 / 300)
    assert loose.tolerance == "high"


def test_worked_and_fired_types_are_respected() -> None:
    findings, labels = _synthetic()
    # a fires for the bots but did not work (not enough data) on half the bot rows: those rows count as 0
    findings = findings.with_columns(
        pl.when(pl.col("bucket") % 2 == 0).then(False).otherwise(True).alias("a__worked")
    )
    fit = calibrate(findings, labels, now=NOW).fits["scraping"]
    assert fit.votes["a"] == 5 and fit.recall == 1.0  # still caught in the other steps

    # a's firing only supports security_crawlers: no evidence for scraping
    typed = findings.with_columns(
        pl.lit(["security_crawlers"], dtype=pl.List(pl.String)).alias("a__fired_types")
    )
    fit = calibrate(typed, labels, now=NOW).fits["scraping"]
    assert fit.votes["a"] == 0
    assert fit.threshold is None


def test_other_bot_types_as_negatives() -> None:
    findings, labels = _synthetic()
    # turn 10 of the legit IPs into api_abuse bots on which a also fires
    api_ips = labels.filter(~pl.col("is_bot"))["ip"].head(10)
    labels = labels.with_columns(
        pl.when(pl.col("ip").is_in(api_ips.implode())).then(True).otherwise(pl.col("is_bot")).alias("is_bot"),
        pl.when(pl.col("ip").is_in(api_ips.implode()))
        .then(pl.lit("api_abuse"))
        .otherwise(pl.col("bot_type"))
        .alias("bot_type"),
    )
    findings = findings.with_columns(
        (pl.col("a__fired") | pl.col("ip").is_in(api_ips.implode())).alias("a__fired")
    )
    legit_only = calibrate(findings, labels, now=NOW)
    assert set(legit_only.fits) == {"api_abuse", "scraping"}
    assert legit_only.fits["scraping"].neg_clients == 290
    assert legit_only.fits["scraping"].recall == 1.0
    everyone = calibrate(findings, labels, negatives="all", now=NOW).fits["scraping"]
    assert everyone.neg_clients == 300
    assert everyone.threshold is None  # a cannot tell scraping from api_abuse


def test_detectors_and_validation() -> None:
    findings, labels = _synthetic()
    assert detectors_in(findings) == ["a", "b"]
    with pytest.raises(ValueError, match="fp_budget"):
        calibrate(findings, labels, fp_budget=1.5)
    with pytest.raises(ValueError, match="negatives"):
        calibrate(findings, labels, negatives="some")  # type: ignore[arg-type]
    # a bot type with no labelled IPs that was asked for: reported, not fitted
    cal = calibrate(findings, labels, bot_types=["scraping", "account_takeover"], now=NOW)
    assert cal.fits["account_takeover"].threshold is None
    assert "not fitted" in cal.fits["account_takeover"].note
