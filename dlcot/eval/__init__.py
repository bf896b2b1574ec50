"""Evaluation (`dlcot eval`): benchmarks → engine generations → `dlcot.answers` verdicts → metrics and report."""
