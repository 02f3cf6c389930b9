"""Sigma rules on Windows events: pySigma's rule model compiled to vectorised Polars."""
