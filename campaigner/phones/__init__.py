"""Phone numbers: from a spreadsheet cell to the E.164 digits CAMS wants (docs/phone-rules.md);
``normalize_phone`` for one cell, ``normalize_phones`` for a column with the same answers."""

from campaigner.phones.reasons import PhoneIssue
from campaigner.phones.scalar import AMBIGUITY_CHOICES, Ambiguity, normalize_phone
from campaigner.phones.vectorized import normalize_phones

__all__ = ("AMBIGUITY_CHOICES", "Ambiguity", "PhoneIssue", "normalize_phone", "normalize_phones")
