"""KAM Rules engine: rule books in YAML, a safe expression language, and vectorized evaluation with traces."""

from .errors import (
    ExpressionError,
    HitPolicyViolation,
    InputError,
    Problem,
    RowError,
    RuleBookError,
    UnsupportedFeature,
)
from .evaluation import Evaluation, Trace
from .rulebook import RuleBook

__all__ = [
    "Evaluation",
    "ExpressionError",
    "HitPolicyViolation",
    "InputError",
    "Problem",
    "RowError",
    "RuleBook",
    "RuleBookError",
    "Trace",
    "UnsupportedFeature",
]
