"""Training data built from a study's conversations and ratings (see docs/datasets.md)."""
