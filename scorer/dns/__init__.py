"""The one DNS layer: outcomes, cache and the resolver wrapper."""
