"""Problem and trace sources, and the synthetic teacher that makes the embedded default data."""
