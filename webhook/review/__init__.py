"""One review: plan, gather the facts, decide; the workload extraction and the fact gathering it needs."""
