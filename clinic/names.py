"""People's names as the clinic stores and shows them.

Stored in Unicode NFC: a name typed or pasted with decomposed letters (u and a
combining diaeresis for ü) is stored composed, so one name has one spelling in
the database, in exports and on every document. Shown by `person_name`, the
one function pages and PDFs use: given name then family name, except for a
name written entirely in Chinese, Japanese or Korean script, which is written
family name first with no space between (王小明, 山田太郎, 김민준).
"""

from __future__ import annotations

import unicodedata

# Blocks of the Han ideographs, Japanese kana and Korean hangul (with their
# marks: the iteration mark 々, the long-vowel mark ー).
_CJK_BLOCKS = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # the iteration, closing and zero marks
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x323AF),  # CJK extensions B to H
)


def nfc(text: str) -> str:
    """`text` in Unicode NFC (composed letters): how every name is stored."""
    return unicodedata.normalize("NFC", text)


def is_cjk(text: str) -> bool:
    """Whether `text` (spaces aside) is written entirely in Chinese, Japanese
    or Korean script; False for an empty text."""
    letters = [ch for ch in text if not ch.isspace()]
    return bool(letters) and all(
        any(first <= ord(ch) <= last for first, last in _CJK_BLOCKS) for ch in letters
    )


def person_name(first_name: str, last_name: str) -> str:
    """A person's name as pages and documents show it: "Zoë Müller"; when both
    names are written in Chinese, Japanese or Korean script, family name first
    with no space ("王小明" for first name 小明, last name 王). A missing part is
    left out, with its space."""
    first, last = first_name.strip(), last_name.strip()
    if first and last and is_cjk(first) and is_cjk(last):
        return f"{last}{first}"
    return " ".join(part for part in (first, last) if part)
