"""One retraining run: the dataset at a cut, `embeddings.train.train`, the gate, then publish,
warm the vector cache and promote (decision 25).

Order and what each step may change:

1. the serving model, found as a replica finds it: the image's own model (`artifacts_dir` /
   `model_version`) when the store names none or names that very version, else the version the
   store names, fetched from the registry. A named version the registry cannot give ends the
   run before training (`RetrainError`): there is nothing honest to gate against.
2. the dataset at a cut (`dataset.py`), then the store is closed for the training.
3. training into a temporary artifacts directory, with the code and defaults of `train`.
4. the gate (`gate.py`); its result, the cut, the training and the parent go into the
   candidate's manifest. Nothing outside the temporary directory has changed so far: a dry run
   ends here.
5. publish to the registry (a version already there, same data, config and seed, stays as
   published: a version names one set of bytes), then every movie's vector at its version at
   the cut into the store's cache, so a replica that swaps embeds only what changed since.
6. promote, if the gate passed, promotion was not turned off, and the serving pointer still
   names the parent (else the comparison no longer holds).

Exit codes (`Outcome.exit_code`): 0 promoted, already serving, or told not to promote
(`--dry-run`, `--no-promote`: the verdict is in the report and the manifest); 1 the candidate
was not promoted because the gate refused it or the serving model changed during the run;
2 (raised as errors) the run could not be done.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.config import TrainConfig
from embeddings.registry import Registry, RegistryError, open_registry
from service.config import PROJECT_ROOT, Settings
from service.learning.dataset import Cut, read_dataset
from service.learning.gate import Verdict, score_both
from service.store import PromotionRaced, Store, store_from_settings

TOOL_TIMEOUT_SECONDS = 10.0  # each store call: pages of histories, not one request's read
CACHE_BATCH = 2000


class RetrainError(Exception):
    """The run cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    seed: int = 0
    config: TrainConfig = field(default_factory=TrainConfig)
    dry_run: bool = False  # train and score; publish, cache and promote nothing
    promote: bool = True  # False: publish and cache, leave the pointer


@dataclass(frozen=True)
class Serving:
    """The model the candidate is compared with."""

    version: str
    directory: Path
    named: str | None  # what the store's pointer said: None when it named none
    source: str  # where it was loaded from, in words


@dataclass(frozen=True)
class Outcome:
    version: str
    serving: Serving
    cut: Cut
    data_report: Counter[str]
    verdict: Verdict
    published: str  # what happened in the registry, in words
    cached: int  # movie vectors written to the store's cache
    promoted: bool
    decision: str  # why the pointer moved or not, in words
    exit_code: int
    phases: dict[str, float]  # seconds by phase
    manifest: dict[str, Any]  # the candidate's, as published (or as it would have been)


async def retrain(
    settings: Settings,
    options: Options = Options(),
    *,
    log: Callable[[str], None] = print,
    before_scoring: Callable[[Path], None] | None = None,
) -> Outcome:
    """One run, as the module says. `before_scoring` gets a freshly trained candidate's directory
    before it is scored, published or cached (the tests spoil a candidate with it)."""
    from embeddings.export import write_manifest
    from embeddings.train import train

    phases: dict[str, float] = {}
    registry = open_registry(settings.registry_url)
    store = await open_tool_store(settings)
    try:
        serving = await find_serving(store, registry, settings)
        with _timed(phases, "read"):
            data = await read_dataset(store)
    finally:
        await store.close()
    log(
        f"data cut: sequence {data.cut.sequence}, {data.cut.movies:,} movies, "
        f"{data.cut.users:,} users, {data.cut.events:,} events; serving model "
        f"{serving.version} from {serving.source}"
    )
    with tempfile.TemporaryDirectory(prefix="retrain-") as staging:
        with _timed(phases, "train"):
            result = train(
                data.dataset, Path(staging), config=options.config, seed=options.seed, log=log
            )
        version = str(result.manifest["version"])
        existing = _published_manifest(registry, version)
        candidate_dir = result.directory
        if existing is not None:  # trained before from the same data: the published bytes
            candidate_dir = registry.fetch(version, settings.model_cache_dir)
        elif before_scoring is not None:
            before_scoring(candidate_dir)
        with _timed(phases, "score"):
            verdict = score_both(
                data.dataset, candidate_dir, serving.directory, tolerance=settings.gate_tolerance
            )
        manifest = existing or {
            **result.manifest,
            "data_cut": data.cut.to_manifest(),
            "training": {
                "config": result.manifest["config"],
                "seed": options.seed,
                **code_version(),
                "seconds": {name: round(s, 2) for name, s in phases.items()},
            },
            "parent": serving.version,
            "gate": verdict.to_manifest(),
        }
        if existing is None:
            write_manifest(candidate_dir, manifest)

        def outcome(published: str, cached: int, promoted: bool, why: str, code: int) -> Outcome:
            return Outcome(
                version,
                serving,
                data.cut,
                data.dataset.report,
                verdict,
                published,
                cached,
                promoted,
                why,
                code,
                phases,
                manifest,
            )

        if options.dry_run:
            return outcome("not published (--dry-run)", 0, False, _dry_run(verdict), 0)
        with _timed(phases, "publish"):
            if existing is None:
                registry.publish(candidate_dir)
                published = f"published to {registry.url}"
            else:
                published = (
                    f"already in {registry.url} (same data, config and seed): its manifest "
                    "keeps the first run's cut and gate"
                )
        store = await open_tool_store(settings)
        try:
            with _timed(phases, "cache"):
                cached = await warm_cache(store, version, candidate_dir, data.versions)
            with _timed(phases, "promote"):
                promoted, why, code = await _promote(store, version, serving, verdict, options)
        finally:
            await store.close()
    return outcome(published, cached, promoted, why, code)


async def open_tool_store(settings: Settings) -> Store:
    """The store as the settings describe it, with a deadline fit for pages of histories."""
    timeout = max(settings.store_timeout_seconds, TOOL_TIMEOUT_SECONDS)
    return await store_from_settings(settings.model_copy(update={"store_timeout_seconds": timeout}))


async def find_serving(store: Store, registry: Registry, settings: Settings) -> Serving:
    """The model the candidate must match, as step 1 of the module says."""
    from embeddings.artifacts import ArtifactError, read_manifest, resolve_model_dir

    path = settings.artifacts_dir
    if settings.model_version != "latest":  # the rule of service.towers.load_towers
        path = path / settings.model_version
    image: tuple[Path, str] | None = None
    try:
        directory = resolve_model_dir(path)
        image = (directory, str(read_manifest(directory)["version"]))
    except (ArtifactError, OSError, KeyError, ValueError):
        pass
    named = await store.serving_model()
    if named is None:
        if image is None:
            raise RetrainError(
                f"the store names no serving model and {path} holds none: nothing to compare "
                "a candidate with (train one with `movie-recs train`, or promote a version)"
            )
        return Serving(image[1], image[0], None, f"{path} (the store names none)")
    if image is not None and image[1] == named:  # as a replica does (service.model_source)
        return Serving(named, image[0], named, f"{path} (the image's own)")
    try:
        return Serving(named, registry.fetch(named, settings.model_cache_dir), named, registry.url)
    except RegistryError as exc:
        raise RetrainError(
            f"the store names {named} as the serving model, but {registry.url} cannot give it "
            f"({exc}) and the image's model in {path} is "
            f"{image[1] if image else 'missing'}: nothing to gate against. Publish {named} "
            "again, or promote a version the registry holds."
        ) from None


async def warm_cache(store: Store, version: str, directory: Path, versions: dict[str, int]) -> int:
    """Every exported vector under (version, the movie's version at the cut)."""
    ids = json.loads((directory / "movie_ids.json").read_text("utf-8"))
    vectors = np.load(directory / "movie_vectors.npy")
    written = 0
    for start in range(0, len(ids), CACHE_BATCH):
        batch = {
            movie_id: (versions[movie_id], vectors[start + i])
            for i, movie_id in enumerate(ids[start : start + CACHE_BATCH])
            if movie_id in versions
        }
        await store.put_embeddings(version, batch)
        written += len(batch)
    return written


async def _promote(
    store: Store, version: str, serving: Serving, verdict: Verdict, options: Options
) -> tuple[bool, str, int]:
    """(promoted, why in words, exit code)."""
    if version == serving.version:
        return False, f"{version} is already the serving model", 0
    if not options.promote:
        passed = "passed the gate" if verdict.passed else "the gate would have refused it"
        return False, f"not promoted (--no-promote); it {passed}", 0
    if not verdict.passed:
        return False, f"the gate refused it: {verdict.reason}", 1
    note = (
        f"retrain: NDCG@{verdict.k} {verdict.candidate.ndcg:.4f} vs {verdict.serving.ndcg:.4f} "
        f"({serving.version}), tolerance {verdict.tolerance:g}"
    )
    try:  # only if the pointer still names the model the gate compared with
        await store.promote_model(version, note, replacing=serving.named)
    except PromotionRaced as exc:
        return (
            False,
            f"the serving model changed from {serving.named or 'none'} to "
            f"{exc.current or 'none'} during the run, so the gate compared with the wrong "
            "model: not promoted; run it again",
            1,
        )
    return True, f"promoted: {verdict.reason}", 0


def _dry_run(verdict: Verdict) -> str:
    passed = "it would pass the gate" if verdict.passed else "the gate would refuse it"
    return f"dry run: nothing published, cached or promoted; {passed}"


def _published_manifest(registry: Registry, version: str) -> dict[str, Any] | None:
    try:
        return registry.manifest(version)
    except RegistryError:
        return None


def code_version() -> dict[str, Any]:
    """The package version, and the git commit when run from a checkout (None in the image)."""
    try:
        package: str | None = importlib.metadata.version("movie-recs")
    except importlib.metadata.PackageNotFoundError:
        package = None
    commit = _git("rev-parse", "HEAD")
    status = None if commit is None else _git("status", "--porcelain", "--untracked-files=no")
    dirty = None if status is None else bool(status)
    return {"package_version": package, "commit": commit, "uncommitted_changes": dirty}


def _git(*args: str) -> str | None:
    if not (PROJECT_ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - started
