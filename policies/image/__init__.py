"""The pure image library, a leaf: no I/O and nothing else of `policies`.

Reference grammar, the Go ports, platforms, the kubelet keyring and pull secret parsing.
"""
