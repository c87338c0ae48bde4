"""Processing algorithms of the SURE Fusion provider."""
