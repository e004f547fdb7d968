"""tthc-sync: nightly integration of administrative-procedure dossiers for a Vietnamese province."""

__version__ = "0.1.0"
