"""Signing adapters: the enveloped XML-DSig of DOMAIN.md §10 with the key in a file, a PKCS#11 token or a
remote hash-signing service.

One code path (``xmldsig.EnvelopedSigner``) computes the reference digest, builds and canonicalises
``SignedInfo`` and places the ``Signature``; a key source only produces the RSA PKCS#1 v1.5 value over the
canonical ``SignedInfo``. ``registry.create_signer`` picks the key source named by ``signer.source``.
"""
