"""Redundancy clusters by math-token bigram Jaccard."""
from __future__ import annotations

from dlcot.enhance.cluster import bigrams, cluster, jaccard, math_tokens, minhash, minhash_similarity, redundant
from tests.enhance_fixtures import CLUSTERS, SEGS, TEXT


def test_math_tokens_ignore_wording():
    assert math_tokens("Let me verify: 3 * 4 = 12.") == math_tokens("Double-checking, 3 \\times 4 = 12")
    assert math_tokens("I think a is right") == []


def test_hand_built_trace_clusters_as_labelled():
    idx = [i for i, s in enumerate(SEGS) if s.kind in ("approach", "verification")]
    ids = cluster([TEXT[SEGS[i].start:SEGS[i].end] for i in idx], threshold=0.25)
    assert ids == [CLUSTERS[i] for i in idx]
    assert redundant(ids) == [False, False, False, True, True, False, True, False]


def test_spans_with_little_math_are_their_own_cluster():
    assert cluster(["Does 52 make sense? Yes.", "Does 52 make sense? Yes."], 0.25) == [0, 1]


def test_similarities_are_bounded_and_symmetric():
    a, b = bigrams("2 + 3 = 5, 5 * 4 = 20"), bigrams("(2 + 3) * 4 = 5 * 4 = 20")
    assert 0 < jaccard(a, b) == jaccard(b, a) < 1
    assert jaccard(a, a) == 1.0
    assert minhash_similarity(minhash(a), minhash(a)) == 1.0


HASHED = """
import json
from dlcot.enhance.cluster import bigrams, cluster, minhash
texts = ["2 + 3 = 5, 5 * 4 = 20", "(2 + 3) * 4 = 5 * 4 = 20", "x^2 - 1 = (x - 1)(x + 1)", "so 5 * 4 = 20 again"]
print(json.dumps({"minhash": [list(minhash(bigrams(t))) for t in texts], "clusters": cluster(texts, 0.25)}))
"""


def test_signatures_and_clusters_do_not_depend_on_the_hash_seed():
    """Python salts str hashes per process (PYTHONHASHSEED): one process cannot see a dependence on them."""
    import json
    import os
    import subprocess
    import sys

    runs = [json.loads(subprocess.run([sys.executable, "-c", HASHED], capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONHASHSEED": seed}).stdout)
            for seed in ("0", "1", "12345")]
    assert runs[0]["minhash"][0] != runs[0]["minhash"][2]  # the signatures tell texts apart
    assert runs[0] == runs[1] == runs[2]
