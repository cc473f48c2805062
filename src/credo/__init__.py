"""credo: an integrity register for public institutions, with due process built in."""

__version__ = "0.1.0"
