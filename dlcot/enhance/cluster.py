"""Redundancy clusters: approaches and checks that follow the same method (paper §3.2).

Two spans follow the same method when they write the same mathematics: the same equations, numbers and
symbols, in the same order. A span is reduced to its *math tokens* (numbers, single-letter variables, LaTeX
commands, operators and brackets; English words are dropped, so "Let me double-check" vs "Let me verify" does
not matter), and to the set of its token *bigrams* ("2 r", "r -", "- 7", ...), which keeps some order.

The measure is the Jaccard similarity of the bigram sets, |A ∩ B| / |A ∪ B|, chosen on hand-labelled pairs
of gold dev spans (12 same-method pairs among 49; `tests/benchmarks/eval_segmentation.py`, table in README.md):
it ranks them best (ROC AUC 0.85; best F1 0.69 at 0.21, 0.63 at the default threshold 0.2), ahead of math
unigrams (0.81), a 64-permutation MinHash estimate of the same Jaccard (0.79: it only approximates it, and pays
off only across millions of spans), the overlap coefficient |A ∩ B| / min(|A|, |B|) (0.68: short spans with a
few common bigrams look contained in everything) and TF-IDF cosine over all words with per-trace IDF (0.67:
the wording of checks is shared across methods). On the synthetic teacher's approaches every lexical measure
is weak (AUC 0.41-0.66): its methods write the same numbers in a different order, which bigrams only partly see.
The alternative measures live with the benchmark that compares them (`tests/benchmarks/similarity.py`).
Clustering is greedy in order of appearance: a span joins the earliest
cluster holding a member at least `threshold` similar, else opens a new one. Every member after the first of a
cluster is *redundant*. Spans with too little mathematics to compare (< MIN_BIGRAMS bigrams, e.g. "Does 52 make
sense? It is a whole number.") are their own cluster.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_MATH_TOKEN = re.compile(r"\\[A-Za-z]+|\d+(?:\.\d+)?|(?<![A-Za-z])[A-Za-z](?![A-Za-z])|[=+\-*/^<>≤≥×÷√π()\[\]{}|!]")
_HYPHENATED = re.compile(r"(?<=[A-Za-z])-(?=[A-Za-z])")  # "double-check" is wording, not a minus
_IGNORED = {"\\(", "\\)", "\\[", "\\]", "\\quad", "\\qquad", "\\left", "\\right", "\\text", "\\,"}
# Single letters that are English words more often than variables ("a", "I") and delimiter noise.
_STOP = {"a", "A", "I", "(", ")", "[", "]", "{", "}"}
MIN_BIGRAMS = 4


def math_tokens(text: str) -> list[str]:
    """The mathematical tokens of a span, in order (English words and LaTeX delimiters dropped)."""
    out = []
    for tok in _MATH_TOKEN.findall(_HYPHENATED.sub(" ", text)):
        if tok in _IGNORED or tok in _STOP:
            continue
        out.append("*" if tok in ("\\times", "×", "\\cdot") else tok)
    return out


def bigrams(text: str) -> frozenset[str]:
    toks = math_tokens(text)
    return frozenset(f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if len(a) < MIN_BIGRAMS or len(b) < MIN_BIGRAMS:
        return 0.0
    return len(a & b) / len(a | b)


def cluster(texts: Sequence[str], threshold: float) -> list[int]:
    """Cluster ids (0, 1, ... in order of first appearance) for spans in reading order; see the module docstring."""
    grams = [bigrams(t) for t in texts]
    ids: list[int] = []
    for i, g in enumerate(grams):
        best = next((ids[j] for j in range(i) if jaccard(g, grams[j]) >= threshold), None)
        ids.append(best if best is not None else (max(ids) + 1 if ids else 0))
    return ids

