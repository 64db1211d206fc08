"""Demo catalogue: ingredients, products with batches (one expired, one
recalled), three aftercare sheets and the usual protocols, all through the
catalogue's services. Idempotent: what already exists (by name or title) is
left alone. The makers are fictional."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from clinic.demo_clock import (
    OPENED_DAYS_AGO,
    clinic_time,
    clock_at,
    clock_can_move,
    working_day,
)
from clinic.models import User
from consent.models import ConsentForm
from consent.services import consent_form_create
from treatments.models import (
    AftercareSheet,
    Batch,
    BatchStatus,
    Ingredient,
    IngredientCategory,
    Product,
    Protocol,
)
from treatments.services.catalogue import (
    CocktailLine,
    batch_create,
    batch_recall,
    ingredient_create,
    product_create,
    protocol_create,
    sheet_create,
)

C = IngredientCategory

INGREDIENTS: tuple[tuple[str, str], ...] = (
    ("Vitamin A (retinol)", C.VITAMIN),
    ("Vitamin B complex (B1, B2, B3, B5, B6)", C.VITAMIN),
    ("Biotin (vitamin B7)", C.VITAMIN),
    ("Vitamin C (ascorbic acid)", C.VITAMIN),
    ("Vitamin E (tocopherol)", C.VITAMIN),
    ("Magnesium", C.MINERAL),
    ("Calcium", C.MINERAL),
    ("Organic silicon", C.MINERAL),
    ("Amino acid complex", C.AMINO_ACID),
    ("L-carnitine", C.AMINO_ACID),
    ("Non-cross-linked hyaluronic acid", C.HYALURONIC_ACID),
    ("Collagenase", C.ENZYME),
    ("Centella asiatica extract", C.PLANT_EXTRACT),
    ("Artichoke extract", C.PLANT_EXTRACT),
    ("Ginkgo biloba extract", C.PLANT_EXTRACT),
    ("Nucleotides (DNA and RNA fragments)", C.NUCLEOTIDE),
    ("Coenzyme Q10", C.COENZYME),
    ("Glutathione", C.ANTIOXIDANT),
    ("Alpha-lipoic acid", C.ANTIOXIDANT),
    ("Minoxidil", C.MEDICINE),
    ("Finasteride", C.MEDICINE),
    ("Platelet-rich plasma (PRP)", C.PRP),
    ("Copper peptides", C.OTHER),
)

# name, maker, concentration, notes, ingredients, batches (lot, months to
# expiry from today, days since it was received).
PRODUCTS: tuple[
    tuple[str, str, str, str, tuple[str, ...], tuple[tuple[str, int, int], ...]], ...
] = (
    (
        "Poly-revitalising solution",
        "Alba Dermaceutics",
        "5 mL vial",
        "Store between 2 and 8 °C. Use within 24 hours of opening.",
        (
            "Non-cross-linked hyaluronic acid",
            "Vitamin B complex (B1, B2, B3, B5, B6)",
            "Vitamin C (ascorbic acid)",
            "Amino acid complex",
            "Nucleotides (DNA and RNA fragments)",
            "Coenzyme Q10",
            "Glutathione",
            "Magnesium",
            "Calcium",
        ),
        (("AD-2611-04", 14, 120), ("AD-2602-11", 20, 20)),
    ),
    (
        "Hyaluronic skin booster 1.5%",
        "Meridian Aesthetic Labs",
        "15 mg/mL, 2 mL syringe",
        "",
        ("Non-cross-linked hyaluronic acid",),
        (("MAL-H1507", 18, 120), ("MAL-H1612", 24, 20)),
    ),
    (
        "Vitamin C ampoule 20%",
        "Lumen Skin Science",
        "200 mg/mL, 2 mL ampoule",
        "Light sensitive: keep in the box.",
        ("Vitamin C (ascorbic acid)",),
        (("LSS-C2040", 10, 120), ("LSS-C2055", 16, 20)),
    ),
    (
        "Antioxidant radiance blend",
        "Lumen Skin Science",
        "3 mL vial",
        "",
        (
            "Vitamin A (retinol)",
            "Vitamin E (tocopherol)",
            "Glutathione",
            "Alpha-lipoic acid",
        ),
        (("LSS-AR118", 12, 90),),
    ),
    (
        "Enzymatic contouring solution",
        "Norvale Pharma",
        "10 mL vial",
        "For small, localised fat deposits only; not a weight-loss treatment.",
        ("Collagenase", "L-carnitine", "Artichoke extract"),
        (("NVP-EC0931", 9, 120), ("NVP-EC1002", 15, 20)),
    ),
    (
        "Draining cellulite complex",
        "Norvale Pharma",
        "5 mL vial",
        "",
        (
            "Centella asiatica extract",
            "Artichoke extract",
            "Ginkgo biloba extract",
            "Organic silicon",
        ),
        (("NVP-DC0417", 11, 60), ("NVP-DC0502", 17, 20), ("NVP-DC0399", -1, 427)),
    ),
    (
        "Scalp revitalising cocktail",
        "Meridian Aesthetic Labs",
        "5 mL vial",
        "",
        (
            "Biotin (vitamin B7)",
            "Vitamin B complex (B1, B2, B3, B5, B6)",
            "Amino acid complex",
            "Copper peptides",
        ),
        (("MAL-S0720", 13, 90),),
    ),
    (
        "Minoxidil and finasteride solution",
        "Vesta Compounding",
        "Minoxidil 0.5%, finasteride 0.05%, 2 mL",
        "Prescription medicine: practitioner's decision for each patient.",
        ("Minoxidil", "Finasteride"),
        (("VC-MF2210", 8, 120), ("VC-MF2301", 12, 20)),
    ),
    (
        "Under-eye peptide serum",
        "Alba Dermaceutics",
        "1 mL syringe",
        "",
        (
            "Non-cross-linked hyaluronic acid",
            "Amino acid complex",
            "Ginkgo biloba extract",
            "Vitamin B complex (B1, B2, B3, B5, B6)",
        ),
        (("AD-UE0312", 15, 90),),
    ),
    (
        "Hand rejuvenation booster",
        "Meridian Aesthetic Labs",
        "2 mL syringe",
        "",
        ("Non-cross-linked hyaluronic acid", "Amino acid complex", "Organic silicon"),
        (("MAL-HR0288", 19, 90),),
    ),
    (
        "Autologous PRP preparation kit",
        "Vesta Medical",
        "Single-use kit, 10 mL draw",
        "The plasma is the patient's own, prepared at the chair.",
        ("Platelet-rich plasma (PRP)",),
        (("VM-PRP5521", 22, 120), ("VM-PRP5530", 26, 20)),
    ),
)

# The expired lot (months to expiry -1 above, received 14 months ago and
# used until it expired) and the recalled one, recalled two days ago.
RECALLED_LOT = ("Vitamin C ampoule 20%", "LSS-C2040")
RECALL_REASON = (
    "Maker's recall notice: a sealing fault on some ampoules of this lot means "
    "sterility cannot be guaranteed. Do not use; return the stock."
)

FACE_SHEET = "Aftercare: face, neck and hands"
BODY_SHEET = "Aftercare: body"
SCALP_SHEET = "Aftercare: scalp"

WARNING_SIGNS = (
    "Redness that spreads or gets worse after the second day\n"
    "The area feels hot, or pus appears at the injection points\n"
    "A fever, or you feel unwell\n"
    "A lump that grows or becomes more painful\n"
    "Itching, a rash or hives away from the treated area (possible allergy)"
)
# No "call 999" line here: the printed sheet always ends its warning signs
# with it (templates/pdf/aftercare_sheet.html).

SHEETS: dict[str, dict[str, str]] = {
    FACE_SHEET: {
        "introduction": (
            "Small red marks, slight swelling and the odd bruise are normal after "
            "mesotherapy of the face, neck or hands. Redness and swelling usually fade "
            "within a day or two, a bruise within a few days, and you can go back to "
            "your normal day straight away."
        ),
        "do_advice": (
            "Hold a cold compress or a wrapped ice pack on any swelling, a few minutes at a time\n"
            "Use a high-protection sunscreen (SPF 30 or more) every day, and a hat in strong sun\n"
            "Wash your face gently with lukewarm water and pat it dry\n"
            "Drink plenty of water over the next few days\n"
            "Call the clinic if anything worries you"
        ),
        "avoid_advice": (
            "Touching, rubbing, pressing or scratching the treated skin: for 6 hours\n"
            "Make-up: for 12 hours\n"
            "Hard exercise, sauna, steam room, swimming pools and sun beds: for 48 hours\n"
            "Alcohol: for 48 hours\n"
            "Sunbathing: until any redness has gone\n"
            "Facials, peels or other skin treatments: for two weeks"
        ),
        "warning_signs": WARNING_SIGNS,
    },
    BODY_SHEET: {
        "introduction": (
            "After body mesotherapy the treated area may be red, a little swollen, "
            "tender or bruised. This settles within a few days; most people carry "
            "on with their day as usual."
        ),
        "do_advice": (
            "Wear loose, comfortable clothes over the treated area today\n"
            "Use a cold compress or a wrapped ice pack to ease tenderness or swelling\n"
            "Keep walking and moving gently: it helps\n"
            "Drink plenty of water\n"
            "Use sunscreen on treated skin that is exposed to the sun"
        ),
        "avoid_advice": (
            "Touching the treated area: for 6 hours\n"
            "Rubbing, massaging or scratching the treated area: for 24 hours\n"
            "Hard exercise, sauna, steam room, swimming pools, hot baths and sun beds: "
            "for 48 hours\n"
            "Alcohol: for 48 hours\n"
            "Tight clothing over the area: for the rest of the day"
        ),
        "warning_signs": WARNING_SIGNS,
    },
    SCALP_SHEET: {
        "introduction": (
            "After scalp mesotherapy your scalp may feel tender or tight and show "
            "small red points. This is expected and settles within a day or two."
        ),
        "do_advice": (
            "Wait until the next day before washing your hair, then use a mild shampoo\n"
            "Hold a cold compress on any tender area\n"
            "Wear a hat in strong sun"
        ),
        "avoid_advice": (
            "Touching or scratching the scalp: for 6 hours\n"
            "Hair dye, perms, styling products and hot hair tools: for 48 hours\n"
            "Hard exercise, sauna, steam room, swimming pools and sun beds: for 48 hours\n"
            "Alcohol: for 48 hours"
        ),
        "warning_signs": WARNING_SIGNS,
    },
}

FACE_CONSENT = "Mesotherapy of the face, neck and hands"
BODY_CONSENT = "Mesotherapy of the body"
SCALP_CONSENT = "Mesotherapy of the scalp"

# name, indication, areas, sessions, interval, minutes, maintenance months,
# consent form, sheet, cocktail (product, amount, unit).
PROTOCOLS: tuple[
    tuple[str, str, list[str], int, str, int, int, str, str, tuple[tuple[str, str, str], ...]],
    ...,
] = (
    (
        "Revitalising",
        "Dull, tired or dehydrated skin; early fine lines. Keeps the skin firm and radiant.",
        ["face", "neck", "decolletage"],
        6,
        "fortnightly",
        45,
        6,
        FACE_CONSENT,
        FACE_SHEET,
        (("Poly-revitalising solution", "3", "ml"), ("Hyaluronic skin booster 1.5%", "1", "ml")),
    ),
    (
        "Lifting and photo-ageing",
        "Sun damage: pigment spots, rough texture, fine wrinkles and loss of hydration.",
        ["face", "neck", "decolletage", "hands"],
        8,
        "fortnightly",
        60,
        6,
        FACE_CONSENT,
        FACE_SHEET,
        (
            ("Vitamin C ampoule 20%", "2", "ml"),
            ("Antioxidant radiance blend", "2", "ml"),
            ("Hyaluronic skin booster 1.5%", "1", "ml"),
        ),
    ),
    (
        "Cellulite",
        "Dimpled skin on the thighs, buttocks and hips; done in stages over the course.",
        ["thighs", "buttocks", "flanks"],
        10,
        "weekly",
        45,
        6,
        BODY_CONSENT,
        BODY_SHEET,
        (("Draining cellulite complex", "5", "ml"),),
    ),
    (
        "Localised fat",
        "Small pockets of fat that resist diet and exercise (abdomen, flanks, arms).",
        ["abdomen", "flanks", "arms"],
        6,
        "fortnightly",
        45,
        12,
        BODY_CONSENT,
        BODY_SHEET,
        (("Enzymatic contouring solution", "5", "ml"),),
    ),
    (
        "Hair restoration",
        "Thinning hair and hair loss; often combined with PRP.",
        ["scalp"],
        8,
        "fortnightly",
        45,
        6,
        SCALP_CONSENT,
        SCALP_SHEET,
        (
            ("Scalp revitalising cocktail", "3", "ml"),
            ("Minoxidil and finasteride solution", "1", "ml"),
        ),
    ),
    (
        "Under-eye",
        "Dark circles, hollowness and fine lines under the eyes.",
        ["under_eye"],
        4,
        "fortnightly",
        30,
        6,
        FACE_CONSENT,
        FACE_SHEET,
        (("Under-eye peptide serum", "1", "ml"),),
    ),
    (
        "Hands",
        "Thin, dry or crêpey skin and sun spots on the back of the hands.",
        ["hands"],
        4,
        "monthly",
        30,
        12,
        FACE_CONSENT,
        FACE_SHEET,
        (("Hand rejuvenation booster", "2", "ml"),),
    ),
)

# How each protocol's cocktail is usually given: (technique, depth in mm,
# needle gauge, device). Face and scalp work is superficial (domain.md:
# nappage, papules, with very fine needles: 0.5 to 2 mm at 30G to 32G); the
# body protocols go point by point a little deeper, at 4 to 6 mm with 27G or 30G.
HOW_GIVEN: dict[str, tuple[str, str, int, str]] = {
    "Revitalising": ("nappage", "1.0", 32, "meso_gun"),
    "Lifting and photo-ageing": ("nappage", "1.0", 32, "meso_gun"),
    "Cellulite": ("point", "4.0", 30, "syringe"),
    "Localised fat": ("point", "6.0", 27, "syringe"),
    "Hair restoration": ("papule", "1.5", 32, "meso_gun"),
    "Under-eye": ("papule", "0.5", 32, "syringe"),
    "Hands": ("papule", "1.0", 30, "syringe"),
}


def _months(n: int) -> timedelta:
    return timedelta(days=round(n * 30.5))


def _batches(
    product: Product, lots: tuple[tuple[str, int, int], ...], *, author: User, today: date
) -> int:
    """Record each lot of `product` not yet recorded, on the day it was
    received; an expired lot only when the clock can move back to that day
    (recorded today, it would rightly be refused)."""
    added = 0
    existing = set(product.batches.values_list("lot_number", flat=True))
    for lot, months, days_ago in lots:
        expiry = today + _months(months) if months >= 0 else today - _months(-months)
        if lot in existing or (expiry < today and not clock_can_move()):
            continue
        received = working_day(days_ago)
        with clock_at(clinic_time(received, 9)):
            batch_create(
                product=product,
                created_by=author,
                lot_number=lot,
                expiry_date=expiry,
                quantity_received=20 if months >= 0 else 10,
                received_on=received,
            )
        added += 1
    return added


@transaction.atomic
def seed(*, practitioner: User, reception: User) -> int:
    """Add what is missing of the demo catalogue; return how many objects
    were added. The manager wrote it when the demo clinic opened, and each
    lot on the day it arrived (clinic.demo_clock)."""
    author = User.objects.filter(username="manager").first() or practitioner
    added = 0
    today = timezone.localdate()
    opened = clinic_time(working_day(OPENED_DAYS_AGO), 9)

    ingredients = {i.name: i for i in Ingredient.objects.all()}
    products = {p.name: p for p in Product.objects.all()}
    sheets = {s.title: s for s in AftercareSheet.objects.all()}
    forms = {f.title: f for f in ConsentForm.objects.all()}
    missing = (
        {name for name, _category in INGREDIENTS} - set(ingredients)
        or {p[0] for p in PRODUCTS} - set(products)
        or set(SHEETS) - set(sheets)
        or {FACE_CONSENT, BODY_CONSENT, SCALP_CONSENT} - set(forms)
        or {p[0] for p in PROTOCOLS} - set(Protocol.objects.values_list("name", flat=True))
    )
    with clock_at(opened) if missing else nullcontext(opened):
        for name, category in INGREDIENTS:
            if name not in ingredients:
                ingredients[name] = ingredient_create(
                    created_by=author, name=name, category=category, active=True
                )
                added += 1
        for name, maker, concentration, notes, names, _lots in PRODUCTS:
            if name not in products:
                products[name] = product_create(
                    created_by=author,
                    ingredients=[ingredients[n] for n in names],
                    name=name,
                    maker=maker,
                    concentration=concentration,
                    notes=notes,
                    active=True,
                )
                added += 1
        for title, texts in SHEETS.items():
            if title not in sheets:
                sheets[title] = sheet_create(created_by=author, title=title, **texts)
                added += 1
        for title in (FACE_CONSENT, BODY_CONSENT, SCALP_CONSENT):
            # consent.demo writes these forms; without it, an empty form keeps the demo whole.
            if title not in forms:
                forms[title] = consent_form_create(title=title, created_by=author)
                added += 1
        existing_protocols = set(Protocol.objects.values_list("name", flat=True))
        for (
            name,
            indication,
            areas,
            sessions,
            interval,
            minutes,
            maintenance,
            consent_title,
            sheet_title,
            cocktail,
        ) in PROTOCOLS:
            if name in existing_protocols:
                continue
            technique, depth, gauge, device = HOW_GIVEN[name]
            protocol_create(
                created_by=author,
                lines=[
                    CocktailLine(product=products[p], amount=Decimal(amount), unit=unit)
                    for p, amount, unit in cocktail
                ],
                name=name,
                indication=indication,
                default_areas=areas,
                default_sessions=sessions,
                interval=interval,
                session_minutes=minutes,
                maintenance_months=maintenance,
                consent_form=forms[consent_title],
                aftercare_sheet=sheets[sheet_title],
                default_technique=technique,
                default_depth_mm=Decimal(depth),
                default_needle_gauge=gauge,
                default_device=device,
                active=True,
            )
            added += 1

    for name, _maker, _concentration, _notes, _names, lots in PRODUCTS:
        added += _batches(products[name], lots, author=author, today=today)

    name, lot = RECALLED_LOT
    batch = Batch.objects.get(product=products[name], lot_number=lot)
    if batch.status != BatchStatus.RECALLED:
        with clock_at(clinic_time(working_day(2), 11, 30)):
            batch_recall(batch=batch, recalled_by=author, reason=RECALL_REASON)
    return added
