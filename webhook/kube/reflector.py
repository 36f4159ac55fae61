"""A list+watch loop that mirrors one kind of API object into an in-memory store (client-go's Reflector, in small).

One daemon thread per reflector: LIST (paged) for a snapshot and its resourceVersion, then WATCH from there,
applying each event to the store. A `410 Gone` relists; any other failure backs off (exponential, jittered) and
relists. Readers on the event loop only ever do dict lookups: writers swap or mutate the dict under a lock.

Objects are handled as the API's JSON (camelCase dicts) and reduced by a `transform` to whatever the store keeps,
on the watch thread, so the hot path never converts anything. Table responses (`as=Table`) are understood too:
each row becomes `{"metadata": ..., "columns": {column name: cell}}`, which lets a reflector keep a printed
column (a Secret's type) without ever receiving the object's data.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any, Generic, TypeVar

import orjson
from kubernetes.client.exceptions import ApiException

from webhook.kube.pages import list_page
from webhook.kube.streams import abort_response, describe_error, watch_lines
from webhook.util.memory import return_freed_memory

log = logging.getLogger("pullguard.kube")

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects

TABLE_ACCEPT = "application/json;as=Table;g=meta.k8s.io;v=v1"


class _Expired(Exception):
    """The watch's resourceVersion is gone (410): only a new LIST can continue."""


class Reflector(Generic[T]):
    """Keeps `transform(object)` for every object `list_func` lists, keyed by (namespace, name).

    `list_func` is a generated list function of the kubernetes client (e.g. `CoreV1Api.list_node`), called with
    `list_kwargs` (namespace, field_selector...). `transform` returning None drops the object. `keep` filters by
    namespace (cluster-scoped objects are always kept). `on_change` runs on the watch thread after every change
    to the store (each LIST, each event), never under the store's lock.
    """

    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        transform: Callable[[Mapping[str, Any]], T | None],
        *,
        list_kwargs: Mapping[str, Any] | None = None,
        accept: str | None = None,
        keep: Callable[[str], bool] | None = None,
        on_change: Callable[[], None] | None = None,
        page_size: int = 250,
        watch_timeout_seconds: int = 300,
        connect_timeout: float = 10.0,
        list_timeout: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.name = name
        self._list_func = list_func
        self._transform = transform
        self._list_kwargs = dict(list_kwargs or {})
        self._headers = {"Accept": accept} if accept else None
        self._keep = keep
        self._on_change = on_change
        self._page_size = page_size
        self._watch_timeout = watch_timeout_seconds
        # The server ends a watch after watch_timeout_seconds; a read timeout a little beyond that notices a
        # connection that died silently (no FIN, e.g. a vanished NAT entry) instead of waiting forever.
        self._watch_request_timeout = (connect_timeout, watch_timeout_seconds + max(10.0, watch_timeout_seconds / 10))
        self._list_request_timeout = (connect_timeout, list_timeout)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max

        self._lock = threading.Lock()
        self._store: dict[Key, T] = {}
        self._snapshot: tuple[T, ...] | None = ()
        self._columns: list[str] = []
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._response: Any = None  # the open watch response, so stop() can cut it
        self._thread: threading.Thread | None = None

        # Counters for tests and diagnostics; written by the watch thread only.
        self.lists = 0
        self.expired = 0
        self.errors = 0
        self.last_error = ""

    # ----------------------------------------------------------------- readers (any thread, never block on I/O)

    def synced(self) -> bool:
        """True once the first LIST has been stored (stays true while later relists fail: the data is stale)."""
        return self._synced.is_set()

    def get(self, namespace: str, name: str) -> T | None:
        return self._store.get((namespace, name))

    def values(self) -> tuple[T, ...]:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:  # rebuilt at most once per change, by the first reader after it
                if self._snapshot is None:
                    self._snapshot = tuple(self._store.values())
                snapshot = self._snapshot
        return snapshot

    def __len__(self) -> int:
        return len(self._store)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"reflector-{self.name}", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the thread to end and cut its open watch; does not wait."""
        self._stopping.set()
        response = self._response
        if response is not None:
            abort_response(response)

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread; True if it ended within `timeout` (it is a daemon either way)."""
        self.signal_stop()
        return self.join(timeout)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        backoff = self._backoff_initial
        just_listed = False
        while not self._stopping.is_set():
            try:
                resource_version = self._list()
                just_listed = True
                while not self._stopping.is_set():
                    started = time.monotonic()
                    resource_version, got_events = self._watch(resource_version)
                    if got_events:
                        just_listed = False
                    if got_events or time.monotonic() - started >= self._watch_timeout / 2:
                        backoff = self._backoff_initial  # a watch that delivered or ran its course is health
                    else:
                        # Ended early with nothing to show (a proxy cutting streams?): do not spin on it.
                        delay = self._jitter(backoff)
                        backoff = min(backoff * 2, self._backoff_max)
                        if self._stopping.wait(delay):
                            break
            except (_Expired, ApiException) as exc:
                if self._stopping.is_set():
                    break
                if isinstance(exc, ApiException) and exc.status != 410:
                    backoff = self._failed(exc, backoff)
                    continue
                self.expired += 1
                # A 410 straight after a fresh LIST would loop hot; otherwise it is routine (etcd compaction).
                delay = self._jitter(backoff) if just_listed else 0.0
                if just_listed:
                    backoff = min(backoff * 2, self._backoff_max)
                log.info(
                    "watch expired, relisting",
                    extra={"fields": {"reflector": self.name, "delay_seconds": round(delay, 2)}},
                )
                if delay and self._stopping.wait(delay):
                    break
            except Exception as exc:  # every failure ends in a relist: the thread must outlive it
                if self._stopping.is_set():
                    break
                backoff = self._failed(exc, backoff)

    def _failed(self, exc: Exception, backoff: float) -> float:
        """Count and log a failure, sleep a jittered `backoff` (unless stopped); return the next backoff."""
        self.errors += 1
        self.last_error = describe_error(exc)
        delay = self._jitter(backoff)
        log.warning(
            "list/watch failed, backing off",
            extra={
                "fields": {
                    "reflector": self.name,
                    "error": self.last_error,
                    "delay_seconds": round(delay, 2),
                    "synced": self.synced(),
                }
            },
        )
        self._stopping.wait(delay)
        return min(backoff * 2, self._backoff_max)

    def _jitter(self, backoff: float) -> float:
        # Somewhere in [backoff/2, backoff]: reflectors failing together (apiserver restart) spread out.
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - not cryptographic

    def _list(self) -> str:
        """LIST every page; swap the store in one step; return the snapshot's resourceVersion.

        Memory: a page's bytes are the largest thing a reflector holds, and its items are parsed one at a time
        (`list_page`), each freed once reduced, so a LIST leaves the heap as a watch delivering the same objects
        would: parsing whole pages left ~6 MiB of partly used small-object arenas behind at 5k Secrets / 1k Nodes.
        Pages are reduced one at a time across all reflectors (`_PAGE_LOCK`; fetching is not serialized) and each
        is dropped before the next is asked for. After the store is swapped, freed heap goes back to the OS."""
        items: dict[Key, T] = {}
        continue_token: str | None = None
        resource_version = ""
        while True:
            kwargs: dict[str, Any] = {**self._list_kwargs, "limit": self._page_size}
            if continue_token:
                kwargs["_continue"] = continue_token
            resource_version, continue_token = self._list_page(kwargs, items)
            if self._stopping.is_set():
                return resource_version  # half a snapshot must not replace a whole one
            if not continue_token:
                break
        with self._lock:
            self._store = items
            self._snapshot = None
        self.lists += 1
        first = not self._synced.is_set()
        log.log(
            logging.INFO if first else logging.DEBUG,
            "cache listed",
            extra={"fields": {"reflector": self.name, "objects": len(items), "resource_version": resource_version}},
        )
        self._changed()  # before `synced`: readiness must not precede what the callback applies (the policy)
        self._synced.set()
        return_freed_memory()
        return resource_version

    def _list_page(self, kwargs: dict[str, Any], items: dict[Key, T]) -> tuple[str, str | None]:
        """Fetch one page into `items`; return (resourceVersion, continue token). Nothing of the page outlives
        this call but what `transform` keeps."""
        response = self._list_func(
            **kwargs,
            _preload_content=False,
            _request_timeout=self._list_request_timeout,
            _headers=self._headers,
        )
        try:
            raw: bytes = response.data
        finally:
            response.release_conn()
        del response  # urllib3 keeps the raw bytes on the response too
        with _PAGE_LOCK:  # the API server serves the next pages meanwhile; parsing waits its turn
            return self._reduce_page(raw, items)

    def _reduce_page(self, raw: bytes, items: dict[Key, T]) -> tuple[str, str | None]:
        body, page = list_page(raw)  # items parsed one at a time (webhook/kube/pages.py)
        del raw
        for item in page:
            key, value = self._reduce(item)
            del item  # before the next one is parsed
            if key is not None and value is not None:
                items[key] = value
        if body.get("kind") == "Table":  # no items: rows, in the body
            for item in self._items(body, listing=True):
                key, value = self._reduce(item)
                if key is not None and value is not None:
                    items[key] = value
        metadata = body.get("metadata") or {}  # read last: the body is complete once its items are
        return str(metadata.get("resourceVersion") or ""), metadata.get("continue") or None

    def _watch(self, resource_version: str) -> tuple[str, bool]:
        """One WATCH request until the server ends it; return the resourceVersion to resume from."""
        response = self._list_func(
            **self._list_kwargs,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=self._watch_request_timeout,
            _headers=self._headers,
        )
        self._response = response
        got_events = False
        try:
            if self._stopping.is_set():  # stop() ran before the response was published
                return resource_version, got_events
            for line in watch_lines(response):
                event = orjson.loads(line)
                resource_version = self._apply(event, resource_version)
                got_events = True
                if self._stopping.is_set():
                    break
        finally:
            self._response = None
            with suppress(Exception):
                response.release_conn()
        return resource_version, got_events

    def _apply(self, event: Mapping[str, Any], resource_version: str) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired
            raise RuntimeError(f"watch error {code}: {obj.get('reason')}: {obj.get('message')}")
        new_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
        if kind == "BOOKMARK":
            return new_version
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return resource_version
        changed = False
        with self._lock:
            for item in self._items(obj, listing=False):
                key, value = self._reduce(item)
                if key is None:
                    continue
                if kind == "DELETED" or value is None:
                    changed |= self._store.pop(key, None) is not None
                else:
                    self._store[key] = value
                    changed = True
            if changed:
                self._snapshot = None
        if changed:
            self._changed()
        return new_version

    def _items(self, body: Mapping[str, Any], *, listing: bool) -> Iterator[Mapping[str, Any]]:
        """The objects in a list body or a watch event's object; Table rows become metadata + named cells."""
        if body.get("kind") == "Table":
            definitions = body.get("columnDefinitions")
            if definitions:  # a watch sends them with its first event only
                self._columns = [str(d.get("name", "")) for d in definitions]
            for row in body.get("rows") or ():
                partial = row.get("object") or {}
                # Cells are positional; a row from an older column set than the definitions has fewer.
                columns = dict(zip(self._columns, row.get("cells") or (), strict=False))
                yield {"metadata": partial.get("metadata") or {}, "columns": columns}
        elif listing:
            yield from body.get("items") or ()
        else:
            yield body

    def _reduce(self, item: Mapping[str, Any]) -> tuple[Key | None, T | None]:
        metadata = item.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return None, None
        namespace = str(metadata.get("namespace") or "")
        if namespace and self._keep is not None and not self._keep(namespace):
            return None, None
        return (namespace, str(name)), self._transform(item)

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change()
        except Exception as exc:  # a broken callback must not stop the cache
            log.error(
                "cache change callback failed",
                extra={"fields": {"reflector": self.name, "error": describe_error(exc)}},
            )


_PAGE_LOCK = threading.Lock()  # one LIST page reduced at a time, whichever reflector asks
