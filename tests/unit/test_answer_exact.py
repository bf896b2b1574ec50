"""The exact number path decides plain numbers like math-verify does, and leaves everything else to it."""
from __future__ import annotations

from fractions import Fraction

import pytest

from dlcot.answer_exact import exact_value, exact_verdict
from dlcot.answers import AnswerChecker

DECIDED = [
    ("\\frac{11}{36}", "11/36"), ("-\\frac{35}{9}", "-\\dfrac{35}{9}"), ("\\frac{5}{13}", "\\frac{65}{169}"),
    ("\\dfrac{33}{100}", "33 / 100"), ("\\frac{11}{2}", "5.5"), ("10,\\!080", "10080"), ("2", "4/2"),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100"), ("0.5", "\\tfrac{1}{2}"), ("-3/4", "-0.75"),
    ("1030", "\\frac{121}{909}"), ("\\frac{243}{625}", "\\frac{3}{5}"), ("10,\\!080", "21"), ("2.5", "2.6"),
    ("\\frac{1}{4}", "0"), ("-2", "2"), ("$\\frac{3}{2}$", "3/2"), ("10080", "10,080"), ("0.5", ".5"),
    ("1000.5", "1,000.5"), ("1,000", "999"),
]


@pytest.mark.parametrize(("text", "value"), [
    ("42", Fraction(42)), ("-7", Fraction(-7)), ("10,\\!080", Fraction(10080)), ("5.50", Fraction(11, 2)),
    ("\\dfrac{65}{169}", Fraction(5, 13)), (" - 3 / 4 ", Fraction(-3, 4)), ("$0.25$", Fraction(1, 4)),
])
def test_plain_numbers_are_read_exactly(text, value):
    assert exact_value(text)[0] == value


@pytest.mark.parametrize("text", [
    "x", "x = 5", "5x", "007", "\\frac12", "2\\frac{1}{2}", "1/0", "\\frac{1}{0}", "10 \\text{ cm}", "1,000,0",
    "3.", "1e5", "\\sqrt{2}", "1234567890123456", "(1, 2)", "1 000", "1,00",
])
def test_anything_else_is_left_to_math_verify(text):
    assert exact_value(text) is None
    assert exact_verdict("5", text) is None


def test_near_misses_are_left_to_math_verify():
    """math-verify rounds a decimal to 6 places (0.333333 matches 1/3): a near miss is not called a mismatch."""
    assert exact_verdict("\\frac{1}{3}", "0.333333") is None
    assert exact_verdict("1000000", "1000000.001") is None
    assert exact_verdict("\\frac{1}{3}", "0.33") is False


def test_every_decided_pair_agrees_with_math_verify():
    fast = {pair: exact_verdict(*pair) for pair in DECIDED}
    assert None not in fast.values() and True in fast.values() and False in fast.values()
    with AnswerChecker(workers=1, timeout_s=10.0) as checker:
        slow = checker._run(list(fast))
    assert {pair: slow[pair][0] for pair in fast} == fast
