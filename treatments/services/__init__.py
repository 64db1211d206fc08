"""Services of the treatments app, one module per area (catalogue, allergy, ...)."""
