"""Redundancy clusters by math-token bigram Jaccard."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dlcot.enhance.cluster import bigrams, cluster, jaccard, math_tokens
from tests.enhance_fixtures import CLUSTERS, SEGS, TEXT


def test_math_tokens_ignore_wording():
    assert math_tokens("Let me verify: 3 * 4 = 12.") == math_tokens("Double-checking, 3 \\times 4 = 12")
    assert math_tokens("I think a is right") == []


def test_hand_built_trace_clusters_as_labelled():
    idx = [i for i, s in enumerate(SEGS) if s.kind in ("approach", "verification")]
    ids = cluster([TEXT[SEGS[i].start:SEGS[i].end] for i in idx], threshold=0.25)
    assert ids == [CLUSTERS[i] for i in idx]
    redundant = [c in ids[:k] for k, c in enumerate(ids)]  # a member after the first of its cluster
    assert redundant == [False, False, False, True, True, False, True, False]


def test_spans_with_little_math_are_their_own_cluster():
    assert cluster(["Does 52 make sense? Yes.", "Does 52 make sense? Yes."], 0.25) == [0, 1]


def test_similarities_are_bounded_and_symmetric():
    a, b = bigrams("2 + 3 = 5, 5 * 4 = 20"), bigrams("(2 + 3) * 4 = 5 * 4 = 20")
    assert 0 < jaccard(a, b) == jaccard(b, a) < 1
    assert jaccard(a, a) == 1.0


def test_clusters_do_not_depend_on_the_hash_seed():
    """Bigram sets iterate in hash order, which Python salts per process: cluster ids must not depend on it."""
    code = ("import json, sys; from dlcot.enhance.cluster import cluster; "
            "from tests.enhance_fixtures import SEGS, TEXT; "
            "print(json.dumps(cluster([TEXT[s.start:s.end] for s in SEGS], 0.25)))")
    outs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]).stdout
            for seed in ("1", "2", "3")}
    assert len(outs) == 1 and json.loads(outs.pop()) == cluster([TEXT[s.start:s.end] for s in SEGS], 0.25)
