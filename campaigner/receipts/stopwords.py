"""Opt-out words: an inbound message that is one of these asks to receive no more messages.

CAMS has no STOP-keyword handling of its own, so the sender keeps the list. A message
matches only when it is the stop word as a whole (after trimming, case-folding, collapsing
inner spaces and dropping end punctuation): "stop" and "STOP!" opt out, "don't stop" does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ("DEFAULT_STOP_WORDS", "normalize_stop_word", "stop_word_set")

DEFAULT_STOP_WORDS: tuple[str, ...] = (
    # English
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "UNSUB",
    "CANCEL",
    "END",
    "QUIT",
    "OPT OUT",
    "OPTOUT",
    "OPT-OUT",
    "REMOVE",
    # Chinese
    "退订",
    "取消订阅",
    "退出",
    "停止",
    "TD",
    # Indonesian
    "BERHENTI",
    "STOP LANGGANAN",
    "BERHENTI BERLANGGANAN",
    "HENTIKAN",
    # Malay
    "BERHENTI LANGGAN",
    "NYAHLANGGAN",
    "HENTI",
    # Portuguese
    "PARAR",
    "PARE",
    "SAIR",
    "CANCELAR",
    "DESCADASTRAR",
    "CANCELAR INSCRIÇÃO",
    # Spanish
    "BAJA",
    "DAR DE BAJA",
    "DETENER",
    "ALTO",
    "CANCELAR SUSCRIPCIÓN",
    "DESUSCRIBIR",
)

_SPACES = re.compile(r"\s+")
# End punctuation people type after the word, in Latin and CJK scripts.
_EDGE_PUNCTUATION = " \t\r\n.!?,;:。！？，；：、\"'“”‘’()（）[]"

# Longer messages are never stop words: lets a store skip them without folding them.
MAX_STOP_WORD_LENGTH = 64


def normalize_stop_word(text: str) -> str:
    """The form messages and stop words are compared in."""
    return _SPACES.sub(" ", text.strip(_EDGE_PUNCTUATION).casefold()).strip()


def stop_word_set(extra: Iterable[str] = ()) -> frozenset[str]:
    """The default stop words plus a campaign's own, normalized."""
    words = {normalize_stop_word(word) for word in (*DEFAULT_STOP_WORDS, *extra)}
    words.discard("")
    return frozenset(words)
