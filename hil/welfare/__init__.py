"""Welfare rules evaluation: a household simulator and a scorer (``python -m hil.welfare``)."""
