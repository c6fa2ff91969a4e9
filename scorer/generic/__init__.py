"""Generic-PTR classifier: is a reverse-DNS name one a provider assigned to a whole range?

Pure functions, no DNS. Entry point: :func:`classify`. See docs/generic-ptr.md.
"""

from scorer.generic.classifier import classify
from scorer.generic.providers import PROVIDERS_VERSION
from scorer.generic.verdict import GenericEvidence, GenericVerdict

__all__ = ["PROVIDERS_VERSION", "GenericEvidence", "GenericVerdict", "classify"]
