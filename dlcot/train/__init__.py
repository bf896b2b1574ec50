"""Training stage: SFT/DPO of students on distilled long chain-of-thought, thin glue over TRL."""
