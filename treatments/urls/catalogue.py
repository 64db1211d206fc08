"""Routes of the catalogue: ingredients, products, batches, protocols, aftercare sheets."""

from django.urls import URLPattern, path

from treatments.views import catalogue as views

urlpatterns: list[URLPattern] = [
    path("catalogue/", views.catalogue, name="catalogue"),
    path("catalogue/ingredients/", views.ingredient_list, name="ingredient_list"),
    path("catalogue/ingredients/new/", views.ingredient_create, name="ingredient_create"),
    path(
        "catalogue/ingredients/<uuid:ingredient>/edit/",
        views.ingredient_edit,
        name="ingredient_edit",
    ),
    path("catalogue/products/", views.product_list, name="product_list"),
    path("catalogue/products/new/", views.product_create, name="product_create"),
    path("catalogue/products/<uuid:product>/", views.product_detail, name="product_detail"),
    path("catalogue/products/<uuid:product>/edit/", views.product_edit, name="product_edit"),
    path(
        "catalogue/products/<uuid:product>/batches/new/",
        views.batch_create,
        name="batch_create",
    ),
    path("catalogue/batches/<uuid:batch>/", views.batch_detail, name="batch_detail"),
    path("catalogue/batches/<uuid:batch>/recall/", views.batch_recall, name="batch_recall"),
    path(
        "catalogue/batches/<uuid:batch>/recall.csv",
        views.batch_recall_csv,
        name="batch_recall_csv",
    ),
    path("catalogue/protocols/", views.protocol_list, name="protocol_list"),
    path("catalogue/protocols/new/", views.protocol_create, name="protocol_create"),
    path("catalogue/protocols/<uuid:protocol>/", views.protocol_detail, name="protocol_detail"),
    path("catalogue/protocols/<uuid:protocol>/edit/", views.protocol_edit, name="protocol_edit"),
    path("catalogue/aftercare/", views.sheet_list, name="sheet_list"),
    path("catalogue/aftercare/new/", views.sheet_create, name="sheet_create"),
    path("catalogue/aftercare/<uuid:sheet>/", views.sheet_detail, name="sheet_detail"),
    path("catalogue/aftercare/<uuid:sheet>/edit/", views.sheet_edit, name="sheet_edit"),
]
