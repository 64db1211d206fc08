"""How a product is injected: the technique, the device, and the bounds of
depth and needle that a cocktail line and a protocol's usual way of giving
both hold, from this one place."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

# Mesotherapy works in the skin and just under it (domain.md: very fine
# needles, shallow injections); 13 mm, the longest mesotherapy needle, is the
# deepest any line can go. Needles run from 18G (drawing up) to 34G.
DEPTH_MM_MIN = Decimal("0.1")
DEPTH_MM_MAX = Decimal("13")
NEEDLE_GAUGE_MIN = 18
NEEDLE_GAUGE_MAX = 34
DEPTH_SENTENCE = _("Depth is between 0.1 and 13 mm.")
NEEDLE_SENTENCE = _("Needle gauge is between 18G and 34G.")


class Technique(models.TextChoices):
    NAPPAGE = "nappage", _("Nappage")
    PAPULE = "papule", _("Papule")
    POINT_BY_POINT = "point", _("Point-by-point")
    LINEAR = "linear", _("Linear threading")


class Device(models.TextChoices):
    SYRINGE = "syringe", _("Syringe")
    MESO_GUN = "meso_gun", _("Meso-gun (injector)")


def depth_in_range(field: str) -> Q:
    """The database's condition on a depth field (mm), both bounds included."""
    return Q(**{f"{field}__gte": DEPTH_MM_MIN, f"{field}__lte": DEPTH_MM_MAX})


def needle_in_range(field: str) -> Q:
    """The database's condition on a needle gauge field, both bounds included."""
    return Q(**{f"{field}__gte": NEEDLE_GAUGE_MIN, f"{field}__lte": NEEDLE_GAUGE_MAX})
