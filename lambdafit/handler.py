"""An AWS Lambda-style entry point: what serving this recommender as a function would cost.

A Lambda instance keeps module-level state while it is warm and is frozen between invocations:
no background task runs, so nothing tails the change log. Its first invocation (the cold start)
therefore imports the service (NumPy, FAISS), loads the NumPy towers, reads every movie vector
from the store and builds the index; later invocations reuse that state as it was, stale. A
catalog change reaches an instance only through a new cold start, or a full reload inside an
invocation (`reload_state`). The request path is the service's own `Recommender`; the state is
built by the same `full_sync` the container runs at startup.

The state is loaded in the first invocation rather than at import, so one code path measures it
(`timeline`). On AWS the 10 s init limit applies to module import; an init that overruns it is
retried inside the first invocation under the function timeout: the first caller waits for all
of it either way. Nothing here needs AWS: `python -m lambdafit` and the tests call `handler`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.api.schemas import MAX_K, response_body
from service.config import Settings
from service.index.refresher import full_sync
from service.metrics import Metrics
from service.replica import Replica, open_replica
from service.store import StoreError
from service.store.records import id_problem

T = TypeVar("T")
Response = dict[str, Any]


class BadRequest(ValueError):
    """The event cannot be answered; the caller gets a 400 with this message."""


class _TimedExecutor(ThreadPoolExecutor):
    """The loop's default executor, adding up how long its calls run.

    `full_sync` builds the index through `asyncio.to_thread`, so this splits "read the state"
    from "build the index" without copying `full_sync`. (A movie-tower run for a vector missing
    from the store's cache would be counted too; measured catalogs have every vector cached.)
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="lambda-default")
        self.busy_seconds = 0.0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        def timed() -> T:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy_seconds += time.perf_counter() - started

        return super().submit(timed)


@dataclass(eq=False)
class Instance:
    """Everything one warm instance holds between invocations."""

    replica: Replica  # its refresher only ever adopts full syncs: nothing tails the log here
    loop: asyncio.AbstractEventLoop
    executor: _TimedExecutor
    timeline: dict[str, float] = field(default_factory=dict)  # cold-start phases, seconds
    invocations: int = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def load_state(self) -> tuple[float, float]:
        """Replace the index with a fresh full sync; (state-read seconds, index-build seconds)."""
        started = time.perf_counter()
        busy_before = self.executor.busy_seconds
        replica = self.replica
        refresher = replica.refresher
        live, epoch = self.run(full_sync(replica.store, replica.towers, refresher.params))
        build = self.executor.busy_seconds - busy_before
        refresher.adopt(live, epoch, caught_up=True)
        return time.perf_counter() - started - build, build


_instance: Instance | None = None


def _cold_start() -> Instance:
    timeline: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timeline[name] = now - mark
        mark = now

    settings = Settings()
    from service.towers import load_towers

    towers = load_towers(settings.artifacts_dir, settings.model_version)
    lap("model load")
    loop = asyncio.new_event_loop()
    executor = _TimedExecutor()
    loop.set_default_executor(executor)
    # A function keeps no snapshot directory: every instance starts from a full sync.
    replica = loop.run_until_complete(open_replica(settings, Metrics(), towers, snapshots=False))
    instance = Instance(replica=replica, loop=loop, executor=executor, timeline=timeline)
    read, build = instance.load_state()
    replica.require_movies()
    timeline["state load"] = read
    timeline["index build"] = build
    return instance


def parse(event: object) -> tuple[str, int]:
    """(user id, k) from an API Gateway proxy-style event."""
    if not isinstance(event, dict):
        raise BadRequest("the event must be an object")
    path = event.get("pathParameters") or {}
    user_id = path.get("user_id") if isinstance(path, dict) else None
    problem = id_problem(user_id)
    if problem is not None or not isinstance(user_id, str):
        raise BadRequest(f"pathParameters.user_id {problem}")
    query = event.get("queryStringParameters") or {}
    raw = query.get("k", "10") if isinstance(query, dict) else None
    try:
        k = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest(f"queryStringParameters.k must be an integer, not {raw!r}") from None
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"queryStringParameters.k must be between 1 and {MAX_K}")
    return user_id, k


def respond(status: int, body: str, *, cold: bool, index_version: int | None = None) -> Response:
    headers = {"content-type": "application/json", "x-cold-start": str(cold).lower()}
    if index_version is not None:
        headers["x-index-version"] = str(index_version)
    return {"statusCode": status, "headers": headers, "body": body}


def handler(event: dict[str, Any], context: object = None) -> Response:
    """GET /v1/users/{user_id}/recommendations?k=…, as a Lambda function would answer it."""
    global _instance
    cold = _instance is None
    if _instance is None:
        _instance = _cold_start()
    instance = _instance
    started = time.perf_counter()
    instance.invocations += 1
    try:
        user_id, k = parse(event)
        history = instance.run(instance.replica.store.recent_history(user_id))
    except BadRequest as exc:
        return respond(400, json.dumps({"detail": str(exc)}), cold=cold)
    except StoreError as exc:
        return respond(503, json.dumps({"detail": f"store unavailable: {exc}"}), cold=cold)
    result = instance.replica.recommender.recommend(history, k)
    body = response_body(result, user_id).decode()
    if cold:
        instance.timeline["first answer"] = time.perf_counter() - started
    return respond(200, body, cold=cold, index_version=result.index_version)


def current_instance() -> Instance | None:
    """The warm instance, if a cold start happened in this process."""
    return _instance


def reload_state() -> float:
    """A full state reload inside a warm instance, in seconds: the only way a function that
    cannot tail the change log picks up a catalog change without a new cold start."""
    if _instance is None:
        raise RuntimeError("no warm instance: invoke the handler first")
    started = time.perf_counter()
    _instance.load_state()
    return time.perf_counter() - started


def discard_instance() -> None:
    """What Lambda does when it recycles an instance: the next invocation starts cold."""
    global _instance
    if _instance is None:
        return
    instance, _instance = _instance, None
    instance.run(instance.replica.store.close())
    instance.loop.close()
    instance.executor.shutdown(wait=True)
