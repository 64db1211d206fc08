"""The usernames staff choose when they join: which characters, and which
names are too like one already in use.

A username holds only ASCII letters (small or capital), the digits 0 to 9
and the five signs . _ @ + -, as Django's `ASCIIUsernameValidator` allows:
no spaces, accents or letters of other scripts, so a Cyrillic a (U+0430) cannot
stand in for a Latin "a" in a name that reads like a colleague's.

Two usernames are too alike when their skeletons are equal. The skeleton
follows the idea of Unicode's UTS #39 (confusable detection): the name in
NFKC, casefolded (as email addresses are compared, clinic/addresses.py),
each character of another script that imitates a Latin one replaced by it
(Unicode's confusables table, as the confusable_homoglyphs package ships it;
this matters for names made before letters were restricted), then the ASCII
look-alikes folded together: 0 and o, 1, i and l (a capital I is an l in
most fonts), rn and m, vv and w.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data
from django.contrib.auth.validators import ASCIIUsernameValidator

from clinic.addresses import email_key

USERNAME_PATTERN = re.compile(ASCIIUsernameValidator.regex, ASCIIUsernameValidator.flags)
# Folded in this order: the pairs first, so that "rn" is an "m" before its
# letters are looked at one by one.
_ASCII_FOLDS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"))
# Direction marks around right-to-left entries of the confusables table.
_MARKS = "\u200e\u200f"


@cache
def _latin_of(character: str) -> str:
    """The ASCII letter or digit `character` imitates, or `character` itself."""
    for homoglyph in confusables_data.get(character, ()):
        text = homoglyph["c"].strip(_MARKS)
        if text.isascii() and text.isalnum():
            return text.casefold()
    return character


def username_allowed(username: str) -> bool:
    """Whether `username` holds only ASCII letters, digits and . _ @ + -
    (at least one character; the length is the model's to check)."""
    return bool(USERNAME_PATTERN.fullmatch(username))


def username_skeleton(username: str) -> str:
    """`username` as compared for look-alikes (see the module): equal
    skeletons read alike. Raises nothing."""
    text = "".join(
        character if character.isascii() else _latin_of(character)
        for character in unicodedata.normalize("NFKD", email_key(username))
        if not unicodedata.combining(character)
    )
    for pair, letter in _ASCII_FOLDS:
        text = text.replace(pair, letter)
    return text
