"""mimamori: security monitoring and first response for small businesses."""

__version__ = "0.1.0"
