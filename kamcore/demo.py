"""A synthetic but realistic portfolio of a mid-size Chinese B2B supplier: Chinese company names in seven
sales regions and ten industries, a long tail of small accounts under a few large ones (the 80/20 shape), and
every field of the shipped data dictionary, related the way they are in real books (slow payers have worse
credit scores, large accounts thinner margins, sleeping accounts no recent orders)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dictionary import Dictionary
from .portfolio import labelled

AS_OF = "2026-11-23"
MEDIAN = 12.3  # log-yuan of the median account

# industry code: (share of accounts, revenue shift in log-yuan, typical gross margin, DSO shift in days,
#                 orders per ¥100k of revenue, words in the company name)
INDUSTRIES = {
    "manufacturing": (0.24, 0.0, 0.19, 0, 1.0, ["精密机械", "智能装备", "机电设备", "五金制品"]),
    "automotive": (0.12, 0.4, 0.16, 5, 0.8, ["汽车零部件", "汽车部件", "车辆配件"]),
    "electronics": (0.12, 0.2, 0.20, 0, 1.2, ["电子科技", "微电子", "光电科技", "电子"]),
    "energy": (0.08, 0.3, 0.22, 10, 0.5, ["新能源", "能源科技", "电力设备", "光伏科技"]),
    "healthcare": (0.08, 0.0, 0.30, 20, 0.9, ["医疗器械", "生物医药", "医药"]),
    "construction": (0.10, 0.1, 0.17, 30, 0.6, ["建设工程", "新型建材", "建筑装饰"]),
    "retail": (0.10, -0.2, 0.14, -12, 2.2, ["商贸", "连锁超市", "百货"]),
    "logistics": (0.08, -0.1, 0.15, 0, 1.6, ["物流", "供应链管理", "国际货运"]),
    "finance": (0.04, 0.1, 0.28, -5, 0.4, ["融资租赁", "金融服务", "资产管理"]),
    "government": (0.04, 0.1, 0.24, 40, 0.4, ["水务集团", "燃气集团", "公交集团", "市政工程"]),
}
# region code: (share of accounts, cities)
REGIONS = {
    "east": (0.36, ["上海", "苏州", "杭州", "宁波", "南京", "无锡", "合肥", "济南", "青岛"]),
    "south": (0.24, ["深圳", "广州", "东莞", "佛山", "厦门", "珠海"]),
    "north": (0.16, ["北京", "天津", "石家庄", "太原", "唐山"]),
    "central": (0.10, ["武汉", "长沙", "郑州", "南昌"]),
    "southwest": (0.08, ["成都", "重庆", "昆明", "贵阳"]),
    "northwest": (0.03, ["西安", "兰州", "银川"]),
    "northeast": (0.03, ["沈阳", "大连", "长春", "哈尔滨"]),
}
BRANDS = ["恒瑞", "华信", "金达", "远航", "中科", "新源", "天成", "博远", "宏达", "瑞丰", "鼎盛", "永泰", "立信",
          "联创", "海纳", "东升", "嘉华", "德润", "凯丰", "盛世", "启明", "同创", "汇通", "百川", "正阳", "万向",
          "晨光", "长城", "安泰", "华茂"]
SUFFIXES = np.array(["有限公司", "股份有限公司", "集团有限公司"])
OPTIONAL = ("gross_profit_12m", "revenue_prev_12m", "dso_days", "credit_score", "open_orders", "potential_revenue",
            "complaint_count", "last_order_date")


def synthetic_portfolio(n: int, seed: int = 7, null_rate: float = 0.01, as_of: str = AS_OF) -> pd.DataFrame:
    """n accounts with the fields of the shipped data dictionary, industry and region as their codes (a sheet
    shows their labels: see `kam demo-data`); `null_rate` of the optional cells are empty."""
    rng = np.random.default_rng(seed)
    today = np.datetime64(as_of, "D")
    codes = list(INDUSTRIES)
    spec = [INDUSTRIES[c] for c in codes]
    k = rng.choice(len(codes), n, p=[s[0] for s in spec])
    shift, typical_margin, slower, order_rate = (np.array([s[c] for s in spec])[k] for c in (1, 2, 3, 4))
    size = rng.normal(MEDIAN, 1.45, n) + shift  # log-yuan: median ≈ ¥220k, a long tail of ¥3M+ accounts
    revenue = np.round(np.maximum(np.exp(size), 5_000), -2)
    margin = np.clip(typical_margin + rng.normal(0, 0.05, n) - 0.01 * (size - MEDIAN), -0.05, 0.6)
    years = np.clip(rng.gamma(2.0, 2.2, n) + 0.3 * (size - MEDIAN), 0.1, 25)  # large accounts are older ones
    new = rng.random(n) < 0.02  # first order placed in the last weeks, nothing invoiced yet
    years = np.where(new, rng.uniform(0.02, 0.15, n), years)
    sleeping = (rng.random(n) < 0.07) & ~new
    growth = np.where(years < 2, rng.normal(0.35, 0.4, n), rng.normal(0.05, 0.2, n))
    growth = np.clip(np.where(sleeping, rng.normal(-0.45, 0.2, n), growth), -0.8, 3)
    orders = rng.poisson(np.clip(revenue / 100_000 * order_rate, 1, 500)) + 1
    orders = np.where(sleeping, np.maximum(orders // 4, 1), orders)
    idle = np.minimum(rng.exponential(365 / orders), 180)
    idle = np.minimum(np.where(sleeping, rng.uniform(181, 600, n), idle), years * 365.25)  # not before the first
    # Large buyers negotiate longer terms, so they pay later; DSO is what receivables are made of.
    dso = np.clip(rng.gamma(5.0, 7.0, n) + 6 * (size - MEDIAN) + slower, 7, 365).round()
    score = np.clip(84 - 0.2 * dso + 2 * (size - MEDIAN) + rng.normal(0, 8, n), 20, 100).round()
    score = np.where(rng.random(n) < 0.03, rng.uniform(25, 49, n).round(), score)  # accounts in trouble
    share = np.clip(np.where(revenue < 200_000, rng.beta(2, 3, n), rng.beta(2.5, 2.5, n)), 0.05, 1)
    has_contract = rng.random(n) < np.clip(0.5 + 0.12 * (size - MEDIAN), 0.1, 0.95)
    contract_end = today + rng.uniform(-90, 700, n).astype("timedelta64[D]")
    frame = pd.DataFrame({
        "account_id": [f"KH{i:06d}" for i in range(1, n + 1)],
        "account_name": _names(rng, k, codes, n),
        "industry": np.array(codes)[k],
        "region": np.empty(n, dtype=object),
        "revenue_12m": revenue,
        "gross_profit_12m": np.round(revenue * margin, -2),
        "revenue_prev_12m": np.where(years >= 1, np.round(revenue / (1 + growth), -2), np.nan),
        "receivables": np.round(revenue * dso / 365 * rng.uniform(0.85, 1.1, n), -2),
        "open_orders": np.where(sleeping, 0.0, np.round(revenue * rng.uniform(0, 0.04, n), -2)),
        "dso_days": dso,
        "credit_score": score,
        "first_order_date": today - (years * 365.25).astype("timedelta64[D]"),
        "last_order_date": today - idle.astype("timedelta64[D]"),
        "order_count_12m": orders.astype(np.float64),
        "complaint_count": rng.poisson(0.2 + orders / 80).astype(np.float64),
        "contract_end_date": np.where(has_contract, contract_end, np.datetime64("NaT")).astype("datetime64[D]"),
        "potential_revenue": np.round(revenue / share, -4),
    })
    frame["region"], frame["account_name"] = _places(rng, frame["account_name"].to_numpy(), n)
    first_order = np.round(np.exp(size[new]) * rng.uniform(0.05, 0.2, new.sum()), -2)
    frame.loc[new, ["revenue_12m", "gross_profit_12m", "receivables"]] = 0.0
    frame.loc[new, "order_count_12m"] = 1.0
    frame.loc[new, ["dso_days", "credit_score"]] = np.nan  # no payments yet, not rated yet
    frame.loc[new, "open_orders"] = first_order
    for col in OPTIONAL:
        frame.loc[rng.random(n) < null_rate, col] = np.nan if frame[col].dtype.kind == "f" else pd.NaT
    for col in ("first_order_date", "last_order_date", "contract_end_date"):
        frame[col] = frame[col].astype("datetime64[s]")
    return frame


def _names(rng: np.random.Generator, k: np.ndarray, codes: list[str], n: int) -> np.ndarray:
    """Brand + industry words + legal form; the city in front is added with the region."""
    words = np.empty(n, dtype=object)
    for j, code in enumerate(codes):
        rows = np.flatnonzero(k == j)
        words[rows] = rng.choice(INDUSTRIES[code][5], len(rows))
    brand = rng.choice(np.array(BRANDS, dtype=object), n)
    public = np.array(codes)[k] == "government"  # a water or gas utility is no limited company
    suffix = np.where(public, "", rng.choice(SUFFIXES, n, p=[0.6, 0.25, 0.15]).astype(object))
    return (pd.Series(brand) + pd.Series(words) + pd.Series(suffix)).to_numpy()


def _places(rng: np.random.Generator, names: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each account's region code, and its name with a city of that region in front."""
    regions = list(REGIONS)
    r = rng.choice(len(regions), n, p=[REGIONS[x][0] for x in regions])
    city = np.empty(n, dtype=object)
    for j, code in enumerate(regions):
        rows = np.flatnonzero(r == j)
        city[rows] = rng.choice(np.array(REGIONS[code][1], dtype=object), len(rows))
    return np.array(regions, dtype=object)[r], (pd.Series(city) + pd.Series(names)).to_numpy()


def as_sheet(frame: pd.DataFrame, dictionary: Dictionary, lang: str) -> pd.DataFrame:
    """The portfolio as an account manager keeps it: headers and industry / region names in `lang`, whole
    numbers without a trailing `.0`."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if values.dtype.kind == "f" and np.array_equal(values.dropna(), values.dropna().round()):
            out[col] = values.astype("Int64")
    return labelled(out, dictionary, lang)
