"""Gather the facts the checks need, concurrently and within the review's deadline.

The foundation has no fact sources yet: mirrors with `verify: true` are therefore never rewritten (unknown is
not "serves"). Registry and cluster sources plug in here.
"""

from __future__ import annotations

from policies.config import Policy
from policies.model import Facts, Workload


class FactGatherer:
    async def gather(self, workload: Workload, policy: Policy) -> Facts:
        return Facts()
