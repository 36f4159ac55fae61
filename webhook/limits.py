"""Admission input limits: what a review may hold, and how much of an attacker's value pullguard ever repeats.

One home for every number (README "Limits"). The rules they serve:

- Nothing an AdmissionReview carries is ever walked recursively (`repr`, `str`, `==`, `deepcopy` of a container):
  every value pullguard reads is a scalar at a fixed path, or a list/object it iterates along a fixed path. So
  nesting depth costs nothing and needs no limit of its own below orjson's 1,024 levels, however deep a review is.
- The work a review costs grows with its containers, so their number per object is capped; bodies over
  `OFFLOAD_BODY_BYTES` are parsed and judged off the event loop, so `/healthz` and small reviews stay fast.
- An error or log line repeats at most `MAX_ECHO_CHARS` of any input value, and a review's log line lists at most
  `MAX_LOGGED_FINDINGS` findings and takes at most `MAX_REVIEW_LINE_BYTES`; a warning at most `MAX_WHOLE_WARNING`
  characters (`MAX_WARNING` once they are shortened), all of a review's at most `MAX_WARNINGS_TOTAL`.

This module imports nothing of webhook/: webhook.logs imports it, and the reverse would be a cycle.
"""

from __future__ import annotations

from policies.image.text import clip as clip_text

# The largest review the API server sends (README "Limits"). Its request body limit is 3 MiB (the apiserver's
# MaxRequestBodyBytes); serializing the AdmissionReview, Go's JSON encoder writes each `<`, `>`, `&`, control
# character and invalid UTF-8 byte of a string as a 6-byte escape; an UPDATE carries object and oldObject. So
# 2 x 6 x 3 MiB, plus the envelope. A review pullguard still refuses is answered as the policy's failurePolicy says
# (webhook.admission.envelope.refusal), never with an HTTP error the webhook configuration would turn into an admission.
API_SERVER_BODY_BYTES = 3 * 1024 * 1024
MAX_BODY_BYTES = 2 * 6 * API_SERVER_BODY_BYTES + 4 * 1024 * 1024  # 40 MiB
REFUSAL_HEAD_BYTES = 64 * 1024  # kept of a refused body to answer it: uid and namespace come before the object
# containers + initContainers + ephemeralContainers + volumes in one object (and in its oldObject). Kubernetes sets
# no number; real pods have a handful, and the worst allowed review is judged in ~30 ms.
MAX_POD_ENTRIES = 1000
MAX_UID_CHARS = 256  # the API server's UIDs are 36-character UUIDs; the uid must be echoed whole, so it is capped
OFFLOAD_BODY_BYTES = 256 * 1024  # larger bodies are parsed and judged in a worker thread
OFFLOAD_IMAGES = 64  # and so are objects with more images to judge
MAX_ECHO_CHARS = 200  # of any input value in an error message or a log field
MAX_LOGGED_FINDINGS = 20  # per review log line; the rest are counted
MAX_REVIEW_LINE_BYTES = 16 * 1024  # of a review's log line; over it, its findings are counted instead of listed
MAX_DENIAL_LINE = 512  # of each problem line in a denial's status message
MAX_DENIAL_LINES = 20  # problem lines in a denial's status message; the rest are counted


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was (policies.image.text.clip, with the echo limit)."""
    return clip_text(text, limit)


def describe(value: object) -> str:
    """A short, safe rendering of an attacker's value for an error message: scalars quoted and clipped,
    containers by their type only (their repr would be unbounded, and recursive)."""
    if isinstance(value, str):
        return repr(clip(value))
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return clip(str(value)) if abs(value) < 10**200 else "a very large number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


REQUEST_TIMEOUT_SECONDS = 10.0  # the API server sends a review at once; its own webhook timeout is at most 30 s
# The API server may truncate a warning past 256 characters and drops warnings past 4 KiB in all
MAX_WARNING = 256  # a warning shortened as the API server would keep it past its total budget
MAX_WHOLE_WARNING = 1024  # a warning sent whole (the API server passes it whole within MAX_WARNINGS_TOTAL)
MAX_WARNINGS_TOTAL = 4096 - 256  # leave room for other webhooks' warnings and the overflow line
