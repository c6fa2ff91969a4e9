"""The one DNS layer: outcomes, our own wire codec and UDP/TCP transport (dnspython
resolves nothing), the cache, and the layer that ties them together (layer.DnsLayer)."""
