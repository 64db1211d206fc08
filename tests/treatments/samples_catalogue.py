"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """Create the sample objects (the sample patient already exists)."""
    from consent.models import ConsentForm
    from tests.factories import (
        AftercareSheetFactory,
        BatchFactory,
        ConsentFormFactory,
        IngredientFactory,
        ProductFactory,
        ProtocolFactory,
    )
    from treatments.models import ProtocolCocktailLine

    form = ConsentForm.objects.filter(uuid=kwargs["form"]).first()
    if form is None:
        form = ConsentFormFactory(uuid=kwargs["form"])
    ingredient = IngredientFactory(uuid=kwargs["ingredient"], name="Sample vitamin C")
    product = ProductFactory(uuid=kwargs["product"], ingredients=[ingredient])
    BatchFactory(uuid=kwargs["batch"], product=product)
    sheet = AftercareSheetFactory(uuid=kwargs["sheet"])
    protocol = ProtocolFactory(uuid=kwargs["protocol"], consent_form=form, aftercare_sheet=sheet)
    ProtocolCocktailLine.objects.create(protocol=protocol, product=product, amount="2.00")
