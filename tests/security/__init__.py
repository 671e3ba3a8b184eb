"""Adversarial tests of organisation isolation, consent, purposes and the access audit."""
