"""vneid-sync: the hospital-side worker for the national electronic health book (Sổ sức khỏe điện tử)."""

from adapters.user_agent import VERSION as __version__  # noqa: N811  # the package version under its conventional dunder name

__all__ = ["__version__"]
