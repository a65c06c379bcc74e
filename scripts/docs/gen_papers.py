"""Placeholder: paper pages generated from claims.json (next step)."""
