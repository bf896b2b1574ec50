"""Alternative span-similarity measures that `eval_segmentation.py` compares with the one clustering uses
(`dlcot.enhance.cluster.jaccard` of math-token bigrams; the comparison is in cluster.py's docstring and README).
Benchmark code only: production clusters with `cluster.jaccard`."""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence

from dlcot.enhance.cluster import MIN_BIGRAMS

_WORD = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?|\\[A-Za-z]+")


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """|A ∩ B| / min(|A|, |B|); 0 when either side has fewer than MIN_BIGRAMS bigrams."""
    if len(a) < MIN_BIGRAMS or len(b) < MIN_BIGRAMS:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def minhash(items: frozenset[str], k: int = 64) -> tuple[int, ...]:
    """A k-permutation MinHash signature (salted blake2b), deterministic across runs and machines."""
    if not items:
        return tuple([2**64 - 1] * k)
    return tuple(min(int.from_bytes(hashlib.blake2b(x.encode(), digest_size=8, salt=i.to_bytes(8, "little"))
                                    .digest(), "little") for x in items) for i in range(k))


def minhash_similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=False)) / max(1, len(a))


def tfidf_cosine(texts: Sequence[str]) -> list[list[float]]:
    """Pairwise cosine of TF-IDF vectors over all word and math tokens, IDF taken over `texts` themselves."""
    bags = [Counter(t.lower() for t in _WORD.findall(text)) for text in texts]
    df = Counter(w for bag in bags for w in bag)
    n = len(texts)
    vecs = []
    for bag in bags:
        v = {w: c * math.log((1 + n) / (1 + df[w])) + c * 1e-3 for w, c in bag.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        vecs.append({w: x / norm for w, x in v.items()})
    return [[sum(x * vb.get(w, 0.0) for w, x in va.items()) for vb in vecs] for va in vecs]
