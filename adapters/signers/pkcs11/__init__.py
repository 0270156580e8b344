"""Key source ``pkcs11``: a USB token or HSM through its PKCS#11 module (python-pkcs11)."""
