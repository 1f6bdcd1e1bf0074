"""One simulated Lambda instance: a fresh process, a cold start, warm invocations, reloads.

`python -m lambdafit` runs `python -m lambdafit.probe SPEC` once per cold start and
reads one JSON object from the last line of stdout. A fresh process is what makes it cold: no
module imported, no model loaded, no vector in memory. Store and model come from MOVIE_RECS_*,
as for the handler. What a real Lambda adds is not here: fetching the package or image, starting
the sandbox, the runtime's own start, and the network between API Gateway and the function.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from bench.harness.memory import peak_rss_mb  # standard library only

STARTED = time.time()  # interpreter start ends here: only the standard library is imported

NEW_MOVIE = "lambda-fit-added-after-cold-start"


def event(user_id: str, k: int = 10) -> dict[str, Any]:
    return {"pathParameters": {"user_id": user_id}, "queryStringParameters": {"k": str(k)}}


def catch_up(handler_module: Any) -> dict[str, float]:
    """Cost of checking the change log inside each invocation (`Refresher.step`), which a
    function could do instead of a full reload: nothing pending, then one new movie."""
    from service.store import Delete, Movie, Upsert

    instance = handler_module.current_instance()

    def step() -> float:
        started = time.perf_counter()
        instance.run(instance.replica.refresher.step())
        return time.perf_counter() - started

    idle = statistics.median(step() for _ in range(20))
    movie = Movie(NEW_MOVIE, "A Film Added After The Cold Start", ("Drama",), 2026)
    instance.run(instance.replica.store.apply_changes([Upsert(movie)]))
    one = step()
    if NEW_MOVIE not in (instance.replica.refresher.live or ()):
        raise RuntimeError("Refresher.step did not index the new movie")
    instance.run(instance.replica.store.apply_changes([Delete(NEW_MOVIE)]))
    step()
    return {"catch_up_idle_seconds": idle, "catch_up_one_movie_seconds": one}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    timeline = {"interpreter start": STARTED - float(spec["spawned"])}
    started = time.perf_counter()
    from lambdafit import handler as lambda_handler

    timeline["import handler"] = time.perf_counter() - started
    users: list[str] = spec["users"]
    first = lambda_handler.handler(event(users[0]), None)
    if first["statusCode"] != 200 or first["headers"]["x-cold-start"] != "true":
        raise RuntimeError(f"cold invocation failed: {first}")
    instance = lambda_handler.current_instance()
    assert instance is not None and instance.replica.refresher.live is not None
    timeline.update(instance.timeline)
    warm = []
    for i in range(int(spec["requests"])):
        started = time.perf_counter()
        answer = lambda_handler.handler(event(users[i % len(users)]), None)
        warm.append(time.perf_counter() - started)
        if answer["statusCode"] != 200 or json.loads(answer["body"])["strategy"] != "personalized":
            raise RuntimeError(f"warm invocation failed: {answer}")
    out: dict[str, Any] = {
        "timeline": timeline,
        "movies": len(instance.replica.refresher.live),
        "index_kind": instance.replica.refresher.live.base.kind,
        "warm_seconds": warm,
        "peak_rss_mb": peak_rss_mb(),
    }
    if spec.get("reload"):
        out["reload_seconds"] = lambda_handler.reload_state()
        out["peak_rss_mb_with_reload"] = peak_rss_mb()
        out.update(catch_up(lambda_handler))
    return out


if __name__ == "__main__":
    result = main(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
