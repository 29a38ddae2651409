"""Automatic scoring of final documents by an LLM judge with a versioned rubric.

Scores are stored as feedback.DocumentScore beside the participant's own rating.
"""
