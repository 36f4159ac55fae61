"""The cluster view: informer-style caches of the few object kinds the checks need.

Admission never calls the API server on its hot path: it reads these caches, which list+watch in the
background and say when they are synced (readiness).
"""
