"""Key source ``file``: a software key in a PKCS#12 (.p12/.pfx) or PEM file (tests and training host)."""
