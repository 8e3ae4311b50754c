"""Training the sculpt model: examples from real text (data.py, with rule-based questions from qgen.py),
output-space targets and the selector loss (targets.py), and the resumable trainer (train.py)."""
