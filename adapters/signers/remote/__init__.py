"""Key source ``remote``: a hash-only remote signing service (see ``protocol`` for the wire format)."""
