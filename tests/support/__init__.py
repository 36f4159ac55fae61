"""Test support: real docker-registry processes, a token issuer, image pushers and fault servers."""
