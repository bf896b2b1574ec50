"""Where problems and traces come from: local files, Hub datasets, LLaMA-Factory releases, benchmarks, teacher
generation (`dlcot generate`), decontamination, and the synthetic problems and teacher (the embedded default data)."""
