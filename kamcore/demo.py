"""A synthetic but realistic portfolio: few large accounts make most of the revenue (the 80/20 shape)."""

from __future__ import annotations

import numpy as np
import pandas as pd

INDUSTRIES = np.array(["manufacturing", "retail", "finance", "energy", "healthcare", "logistics", "government"])
INDUSTRY_WEIGHTS = np.array([0.28, 0.22, 0.12, 0.08, 0.12, 0.12, 0.06])
REGIONS = np.array(["华东", "华南", "华北", "西南", "东北"])
_PREFIX = np.array(["华", "中", "东方", "长江", "恒", "新", "金", "远大", "海", "天"])
_MIDDLE = np.array(["瑞", "信", "达", "盛", "泰", "通", "联", "兴", "丰", "源"])
_SUFFIX = np.array(["科技", "实业", "贸易", "集团", "制造", "物流", "医药", "能源", "零售", "电子"])


def synthetic_portfolio(n: int, seed: int = 7, null_rate: float = 0.01, as_of: str = "2026-11-23") -> pd.DataFrame:
    """n accounts with the fields of the shipped data dictionary; `null_rate` of the optional cells are empty."""
    rng = np.random.default_rng(seed)
    revenue = np.round(np.exp(rng.normal(13.8, 1.5, n)), -2)  # lognormal: median ~1M, a long tail of giants
    margin = np.clip(rng.normal(0.2, 0.09, n), -0.05, 0.6)
    growth = rng.normal(0.05, 0.25, n)
    dso = np.clip(rng.gamma(3.0, 12.0, n), 5, 240).round()
    orders = rng.poisson(np.clip(revenue / 150_000, 1, 400))
    last_order = np.datetime64(as_of) - rng.exponential(60, n).astype("timedelta64[D]")
    frame = pd.DataFrame({
        "account_id": [f"C{i:07d}" for i in range(1, n + 1)],
        "account_name": _names(rng, n),
        "industry": rng.choice(INDUSTRIES, n, p=INDUSTRY_WEIGHTS),
        "region": rng.choice(REGIONS, n),
        "revenue_12m": revenue,
        "gross_profit_12m": np.round(revenue * margin, -2),
        "revenue_prev_12m": np.round(revenue / (1 + growth), -2),
        "receivables": np.round(revenue * dso / 365 * rng.uniform(0.5, 1.1, n), -2),
        "open_orders": np.round(revenue * rng.uniform(0, 0.04, n), -2),
        "dso_days": dso,
        "credit_score": np.clip(rng.normal(70, 12, n), 0, 100).round(),
        "order_count_12m": orders.astype(np.float64),
        "last_order_date": last_order,
    })
    for col in ("gross_profit_12m", "revenue_prev_12m", "dso_days", "credit_score", "open_orders"):
        frame.loc[rng.random(n) < null_rate, col] = np.nan
    return frame


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    parts = [rng.choice(p, n) for p in (_PREFIX, _MIDDLE, _SUFFIX)]
    return np.char.add(np.char.add(parts[0].astype(str), parts[1].astype(str)), parts[2].astype(str))
