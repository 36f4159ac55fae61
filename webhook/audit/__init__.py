"""The background audit and its Lease."""
