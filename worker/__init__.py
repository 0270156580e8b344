"""vneid-sync: the hospital-side worker for the national electronic health book (Sổ sức khỏe điện tử)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vneid-sync")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
