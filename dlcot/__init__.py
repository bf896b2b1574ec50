"""dlcot: distil long chain-of-thought from teachers into students."""
__version__ = "0.1.0"
