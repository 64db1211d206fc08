"""One comparison of email addresses for everything that counts or finds by them.

An address typed on a public page is compared as Unicode NFKC then
casefolded, the comparison Django's password reset makes
(`django.contrib.auth.forms._unicode_ci_compare`). PostgreSQL's UPPER(),
behind `__iexact`, maps more look-alikes together (a dotless i, U+0131, to I;
a long s, U+017F, to S): a lookup narrows with `__iexact` and then keeps only the addresses
equal under `email_key`, so an address counted as one is the only one found.
"""

from __future__ import annotations

import unicodedata


def email_key(value: str) -> str:
    """`value` (an email address, any text) as compared: surrounding spaces
    dropped, NFKC, casefolded. Raises nothing."""
    return unicodedata.normalize("NFKC", (value or "").strip()).casefold()
