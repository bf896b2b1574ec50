"""A miniature of the key-factors paper's LLaMA-Factory release (dataset_info.json and its JSON arrays), shared by
the tests of the reader, of key-factors training and of the exemplars."""
from __future__ import annotations

import json
from pathlib import Path

PROBLEMS = [f"Sam has {a} apples and buys {b} more. How many apples does Sam have?" for a, b in
            [(3, 4), (10, 5), (7, 7), (2, 9), (6, 1), (8, 8)]]
GOLD = ["7", "15", "14", "11", "7", "16"]


def write_array(folder: Path, name: str, rows) -> str:
    (folder / name).write_text(json.dumps(rows))
    return name


def release(folder: Path) -> Path:
    """A miniature of the release: two GPT-4o levels, the human annotation, the answer-only file."""
    level1 = [{"instruction": p, "output": f" Add them. The answer is {g}"}
              for p, g in zip(PROBLEMS, GOLD, strict=True)]
    level2 = [{"instruction": p, "output": f"Sam starts with some apples, then adds more. The answer is {g}"}
              for p, g in zip(PROBLEMS, GOLD, strict=True)]
    level2[1]["output"] = "A wrong sum. The answer is 99"  # a teacher error: kept, flagged as a mismatch
    human = [{"instruction": p, "output": f"{g}.0. The answer is {g}.0"} for p, g in zip(PROBLEMS, GOLD, strict=True)]
    only = [{"instruction": "  " + p.replace(" ", "  "), "output": g} for p, g in zip(PROBLEMS, GOLD, strict=True)]
    info = {
        "SVAMP_ChatGPT_level1": {"file_name": write_array(folder, "l1.json", level1),
                                 "columns": {"prompt": "instruction", "response": "output"}},
        "SVAMP_ChatGPT_level2": {"file_name": write_array(folder, "l2.json", level2)},
        "SVAMP_human": {"file_name": write_array(folder, "human.json", human)},
        "SVAMP_only_ans": {"file_name": write_array(folder, "only.json", only)},
        "missing_file": {"file_name": "nope.json"},
    }
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder / "dataset_info.json"
