"""The little English grammar captions need, in one place so every caption writer agrees."""
from __future__ import annotations


def article(word: str) -> str:
    """'an' before a word that starts with a vowel letter, else 'a' (by spelling: enough for colour and
    animal names, which have no silent h or 'u' read as 'you')."""
    return "an" if word[0] in "aeiou" else "a"
