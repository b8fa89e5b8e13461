"""A tiny rule book whose rule and rule test change together: a commit holding one without the other fails."""

import pytest

FIELDS = """fields:
  - {name: amount, type: number, label: {zh: 数量, en: Amount}}
"""
PRICE_RULE = """rules:
  - id: price
    kind: formula
    label: {{zh: 价格, en: Price}}
    formulas:
      price: amount * {factor}
"""
PRICE_TEST = """tests:
  - name: ten units
    account: {{amount: 10}}
    expect: {{price: {expected}}}
"""


def write_tiny_book(folder, factor=2):
    (folder / "tests").mkdir(parents=True)
    (folder / "fields.yaml").write_text(FIELDS, encoding="utf-8")
    (folder / "price.yaml").write_text(PRICE_RULE.format(factor=factor), encoding="utf-8")
    (folder / "tests" / "price.yaml").write_text(PRICE_TEST.format(expected=factor * 10), encoding="utf-8")
    return folder


def price_files(factor, expected=None):
    """The change that sets the price factor, with its rule test (expecting `expected` if given)."""
    return {"price.yaml": PRICE_RULE.format(factor=factor),
            "tests/price.yaml": PRICE_TEST.format(expected=factor * 10 if expected is None else expected)}


@pytest.fixture
def seed(tmp_path):
    return write_tiny_book(tmp_path / "seed")


@pytest.fixture
def price_change():
    return price_files
