"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """Create the sample objects (the sample patient already exists)."""
