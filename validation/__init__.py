"""Validation: every answer is checked against its passages before anyone sees it (see validation.validate)."""

from pipeline.types import GroundTruth, InjectionFlag, SentenceReport, ValidationReport
from .support import NLIChecker, OverlapEmbeddingChecker, SupportChecker, get_checker, register_checker
from .validate import Validator, validate

__all__ = [
    "GroundTruth", "InjectionFlag", "SentenceReport", "ValidationReport", "NLIChecker", "OverlapEmbeddingChecker",
    "SupportChecker", "get_checker", "register_checker", "Validator", "validate",
]
