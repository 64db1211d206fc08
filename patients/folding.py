"""How names are folded so that the way a person is typed does not matter.

One function, `search_foldings`, folds both what is stored in
`Patient.search_text` and every word typed in the search box, so the two sides
can never drift apart. `name_key` gives the one spelling the duplicate check
compares and locks on. Both run in Python rather than in PostgreSQL: the
embedded server used in development and tests has no `unaccent`, and the
German and Nordic double spellings (Müller: Muller and Mueller) need more than
`unaccent` gives anyway.
"""

from __future__ import annotations

import re
import unicodedata

# Letters with two customary plain spellings: the short one (ü as u) and the
# transliteration (ü as ue). Letters that NFKD does not decompose (ø, æ, ł...)
# are listed with the same spelling on both sides.
_SHORT = {
    "ä": "a",
    "ö": "o",
    "ü": "u",
    "ø": "o",
    "å": "a",
    "æ": "ae",
    "œ": "oe",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "\u0131": "i",  # dotless i
}
_LONG = {**_SHORT, "ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "å": "aa"}
_SHORT_TABLE = str.maketrans(_SHORT)
_LONG_TABLE = str.maketrans(_LONG)

# Typed differently by different people and keyboards (O'Grady with a straight
# or a typographic apostrophe, OGrady; Jean-Luc, Jean Luc; St. John):
# removed, or read as a word break.
APOSTROPHES = "'\u2019\u2018\u02bc\u02bb`\u00b4"
HYPHENS = "-\u2010\u2011\u2012\u2013\u2014"
DOTS = ".\u00b7"
_SEPARATORS = re.compile(f"[{re.escape(APOSTROPHES + HYPHENS + DOTS)}]")

# The duplicate key drops the letter a transliteration adds (ue, oe, ae, aa),
# so Müller, Muller and Mueller share one key whichever way each letter is typed.
_TRANSLITERATION_TAIL = re.compile(r"([ou])e+|(a)[ae]+")


def _visible(text: str) -> str:
    """`text` without format characters (Unicode category Cf): the zero-width
    space and joiners, the soft hyphen, direction marks, the byte-order mark.
    Pasted from a document or a phone, they are invisible on the page and
    would otherwise make two spellings of one name differ."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _fold(text: str, table: dict[int, str], separator: str) -> str:
    # Separators first: NFKC turns the acute accent (U+00B4) into a space.
    text = _SEPARATORS.sub(separator, _visible(text))
    # NFKC, so that full-width and other compatibility forms are the plain
    # letters, and a decomposed ü (u + U+0308) meets the table as ü.
    text = unicodedata.normalize("NFKC", text).casefold().translate(table)
    # Separators again, for the full-width forms NFKC brings back to ' - .
    text = unicodedata.normalize("NFKD", _SEPARATORS.sub(separator, text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_SEPARATORS.sub(separator, text).split())


def search_foldings(text: str, *, word_breaks: bool = True) -> list[str]:
    """Every plain spelling of `text`, first the plain-ASCII one.

    Format characters (zero-width spaces, soft hyphens, direction marks)
    dropped; Unicode NFKC (full-width forms as plain letters), then NFKD
    with combining marks dropped, case folded; ü, ö, ä, ø, å both
    short and transliterated (u/ue, o/oe, a/ae, o/oe, a/aa); ß as ss, æ as ae,
    ł as l, đ as d; apostrophes, hyphens and dots removed ("ogrady") and, when
    `word_breaks`, also read as a word break ("o grady"). "Siobhán O'Grady"
    gives ["siobhan ogrady", "siobhan o grady"]; "Müller" gives ["muller",
    "mueller"]. An empty list when nothing is left (only punctuation or spaces).

    Every spelling of a search word includes its removed-separator form, so
    stored text that is only ever searched inside (an email) needs no
    word-break form: `word_breaks=False` keeps the indexed column short.
    """
    foldings: list[str] = []
    for table in (_SHORT_TABLE, _LONG_TABLE):
        for separator in ("", " ") if word_breaks else ("",):
            folded = _fold(text, table, separator)
            if folded and folded not in foldings:
                foldings.append(folded)
    return foldings


def name_key(name: str) -> str:
    """The spelling the duplicate check compares: the plain-ASCII folding with
    spaces removed and transliteration letters dropped ("Zoë", "ZOE" -> "zo";
    "Müller", "Mueller", "muller" -> "muller"; "O'Grady", "O Grady" -> "ogrady").

    Deliberately coarse (Michael and Michal share a key): it only ever raises a
    warning, and only together with the same birth date.
    """
    plain = _fold(name, _SHORT_TABLE, "").replace(" ", "")
    return _TRANSLITERATION_TAIL.sub(lambda match: match.group(0)[0], plain)
