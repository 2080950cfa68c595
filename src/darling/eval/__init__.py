"""Evaluation: sample k responses per prompt, score, partition, and report (``evaluate.py``)."""
