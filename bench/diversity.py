"""What the diversity knob costs and buys, through the served Recommender and the bundled model.

    .venv/bin/python -m bench.diversity [--model artifacts] [--no-write]

Held-out ml-latest-small users, leave-last-out (the split the model's manifest names, so its
test targets were never trained on): each user's history before the last event goes into
`Recommender.recommend` as the store would hand it (newest first, ratings kept), seen movies
excluded, ranked over the whole catalog; the held-out movie is the target. For diversity 0,
0.1, ..., 1: HR@10, NDCG@10, catalog coverage (distinct movies over all lists / catalog),
intra-list diversity (mean pairwise 1 - cosine of the movie vectors; mean pairwise 1 - Jaccard
of the genre sets), novelty (mean -log2 of the share of training users who saw the movie).
Then the per-request price of diversity > 0, interleaved with diversity 0 on the same
histories. Writes the table into docs/benchmarks.md and the curve into docs/diversity.png.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.harness.results import begin_run
from embeddings.data import BUNDLED_DATA, Dataset, load_dataset
from embeddings.split import EvalCases, Split, leave_last_out
from service import rerank
from service.index.live import LiveIndex, MovieMeta, build_live_index
from service.index.view import Serving
from service.recommender import Recommender
from service.store import Event
from service.store.history import History
from service.towers import Towers, load_towers

console = Console(width=160)
K = 10
DIVERSITIES = [round(0.1 * i, 1) for i in range(11)]
PLOT = Path("docs/diversity.png")


class StaticView:
    """A published index that never changes: the view the Recommender reads, in-process."""

    def __init__(self, live: LiveIndex, towers: Towers) -> None:
        self.live = live
        self.towers = towers
        self.serving = Serving(live, towers)


def catalog_recommender(towers: Towers, dataset: Dataset) -> tuple[Recommender, np.ndarray]:
    """The Recommender over the whole catalog as the model exported it: (it, vectors in the
    dataset's movie order)."""
    ids = [m.id for m in dataset.movies]
    exported = np.load(towers.directory / "movie_vectors.npy")
    order = {m: i for i, m in enumerate(_read_ids(towers.directory))}
    vectors = np.ascontiguousarray(exported[[order[m] for m in ids]], np.float32)
    meta = [MovieMeta(m.title, m.genres, m.year) for m in dataset.movies]
    live = build_live_index(ids, vectors, meta, index_version=0)
    return Recommender(StaticView(live, towers)), vectors  # type: ignore[arg-type]


def _read_ids(directory: Path) -> list[str]:
    import json

    return [str(m) for m in json.loads((directory / "movie_ids.json").read_text("utf-8"))]


def rating_of(dataset: Dataset) -> dict[tuple[str, int], float]:
    """Each (user, catalog row)'s rating: MovieLens holds one per pair."""
    ratings = dataset.ratings
    users = ratings.users
    return {
        (users[u], m): r
        for u, m, r in zip(
            ratings.user_index.tolist(),
            ratings.movie_index.tolist(),
            ratings.ratings.tolist(),
            strict=True,
        )
    }


def case_history(
    split: Split, user: str, movies: np.ndarray, ratings: dict[tuple[str, int], float]
) -> History:
    """A case's history as the store returns it: newest first, each event its rating."""
    events = [
        Event(split.movie_ids[m], "rate", float(t), ratings[(user, m)])
        for t, m in enumerate(movies.tolist())
    ]
    return History.of(events[::-1])


@dataclass
class Scores:
    hr: float
    ndcg: float
    coverage: float
    ild_embedding: float
    ild_genre: float
    novelty: float
    hits: np.ndarray  # bool per case, for paired comparisons

    def hr_change(self, base: Scores) -> str:
        """HR@10's relative change from `base` on the same cases, with a 95 % interval of the
        paired difference (normal approximation; the cases are the same users)."""
        diff = self.hits.astype(float) - base.hits.astype(float)
        half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if not base.hr:
            return "-"
        low, high = (diff.mean() - half) / base.hr, (diff.mean() + half) / base.hr
        return f"{diff.mean() / base.hr:+.1%} [{low:+.1%}, {high:+.1%}]"


def measure(
    recommender: Recommender,
    cases: EvalCases,
    histories: list[History],
    split: Split,
    vectors: np.ndarray,
    genres: list[frozenset[str]],
    information: np.ndarray,
    diversity: float,
) -> Scores:
    row = {m: i for i, m in enumerate(split.movie_ids)}
    hits, gains, ild_e, ild_g, novelty = [], [], [], [], []
    shown: set[int] = set()
    for history, target in zip(histories, cases.targets.tolist(), strict=True):
        result = recommender.recommend(history, K, diversity=diversity)
        rows = [row[item.movie_id] for item in result.items]
        shown.update(rows)
        rank = rows.index(target) if target in rows else -1
        hits.append(rank >= 0)
        gains.append(1.0 / math.log2(rank + 2) if rank >= 0 else 0.0)
        ild_e.append(mean_pairwise(1.0 - vectors[rows] @ vectors[rows].T))
        ild_g.append(mean_pairwise(genre_distance([genres[r] for r in rows])))
        novelty.append(float(information[rows].mean()))
    return Scores(
        float(np.mean(hits)),
        float(np.mean(gains)),
        len(shown) / len(split.movie_ids),
        float(np.mean(ild_e)),
        float(np.mean(ild_g)),
        float(np.mean(novelty)),
        np.array(hits, bool),
    )


def mean_pairwise(distance: np.ndarray) -> float:
    n = len(distance)
    return float(distance[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0


def genre_distance(sets: list[frozenset[str]]) -> np.ndarray:
    n = len(sets)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            union = len(sets[i] | sets[j])
            out[i, j] = out[j, i] = 1.0 - (len(sets[i] & sets[j]) / union if union else 1.0)
    return out


def self_information(split: Split) -> np.ndarray:
    """-log2 of the share of training users who interacted with each movie (unseen ones count
    as seen by half a user, so a never-trained movie is the most novel, not infinite)."""
    seen = np.zeros(len(split.movie_ids))
    for movies, _ in split.train_sequences():
        seen[np.unique(movies)] += 1
    users = len(split.users)
    return np.asarray(-np.log2(np.maximum(seen, 0.5) / users))


NO_DISLIKES = -1.0  # a threshold no rating is under: every rating feeds the tower, as before


def dislike_figures(
    recommender: Recommender,
    towers: Towers,
    split: Split,
    cases: EvalCases,
    histories: list[History],
    vectors: np.ndarray,
) -> tuple[Table, list[str]]:
    """What a dislike does to a list: (1) a history of one movie rated 1 star, for the 100 most
    popular movies and 100 others: the top 10's mean cosine to it, against the popular list
    (the same without it) and against before (a low rating fed the tower as a small positive);
    (2) held-out users with a rating <= the threshold among their newest events: the top 10's
    mean cosine to their nearest such movie, and how many of those movies' 10 nearest
    neighbours are in it, before and now; HR@10 of those users both ways."""
    row = {m: i for i, m in enumerate(split.movie_ids)}
    threshold = recommender.dislike_max_rating
    popular_ids = [m for m, _ in towers.popular]
    rng = np.random.default_rng(0)
    others = [m for m in rng.permutation(split.movie_ids).tolist() if m not in popular_ids[:100]]
    single: dict[str, list[float]] = {"popular list": [], "before": [], "now": []}
    below = above = 0
    chosen = popular_ids[:100] + others[:100]
    for movie_id in chosen:
        disliked = vectors[row[movie_id]]
        history = History.of([Event(movie_id, "rate", 0.0, 1.0)])
        popular = [row[m] for m in popular_ids if m != movie_id][:K]
        single["popular list"].append(float((vectors[popular] @ disliked).mean()))
        for label, at in (("before", NO_DISLIKES), ("now", threshold)):
            recommender.dislike_max_rating = at
            items = recommender.recommend(history, K).items
            single[label].append(
                float((vectors[[row[i.movie_id] for i in items]] @ disliked).mean())
            )
        below += single["now"][-1] < single["popular list"][-1] - 1e-6
        above += single["now"][-1] > single["popular list"][-1] + 1e-6
    recommender.dislike_max_rating = threshold

    mixed: dict[str, list[float]] = {"before": [], "now": []}
    neighbours: dict[str, list[int]] = {"before": [], "now": []}
    hits: dict[str, list[bool]] = {"before": [], "now": []}
    length = towers.history_length
    for history, target in zip(histories, cases.targets.tolist(), strict=True):
        recent = history.disliked(threshold)[:length]
        if not recent.any() or recent.all():
            continue
        disliked_rows = [row[history.movie_ids[i]] for i in np.flatnonzero(recent)]
        near = set()
        for r in disliked_rows:
            near.update(np.argsort(-(vectors @ vectors[r]))[1 : K + 1].tolist())
        for label, at in (("before", NO_DISLIKES), ("now", threshold)):
            recommender.dislike_max_rating = at
            rows = [row[i.movie_id] for i in recommender.recommend(history, K).items]
            cosines = vectors[rows] @ vectors[disliked_rows].T
            mixed[label].append(float(cosines.max(axis=1).mean()))
            neighbours[label].append(len(near.intersection(rows)))
            hits[label].append(target in rows)
    recommender.dislike_max_rating = threshold

    table = Table(title="Dislikes: what a rating <= the threshold (or a dislike event) does")
    table.add_column("case")
    table.add_column("popular list", justify="right")
    table.add_column("before (fed as a small positive)", justify="right")
    table.add_column("now (pushed away)", justify="right")
    table.add_row(
        f"one movie rated 1 star ({len(chosen)} movies): top 10's mean cosine to it",
        f"{np.mean(single['popular list']):.3f}",
        f"{np.mean(single['before']):.3f}",
        f"{np.mean(single['now']):.3f}",
    )
    users = len(mixed["now"])
    table.add_row(
        f"mixed histories ({users} held-out users): top 10's mean cosine to the nearest dislike",
        "",
        f"{np.mean(mixed['before']):.3f}",
        f"{np.mean(mixed['now']):.3f}",
    )
    table.add_row(
        "mixed: the dislikes' 10 nearest movies in the top 10 (mean count)",
        "",
        f"{np.mean(neighbours['before']):.2f}",
        f"{np.mean(neighbours['now']):.2f}",
    )
    table.add_row(
        "mixed: HR@10 of those users (leave-last-out)",
        "",
        f"{np.mean(hits['before']):.4f}",
        f"{np.mean(hits['now']):.4f}",
    )
    notes = [
        f"One disliked movie: the top 10 sits further from it than the popular list does for "
        f"{below} of {len(chosen)} movies, closer for {above}; for the rest the popular top 10 "
        f"has no neighbour of it above the push's cosine {rerank.DISLIKE_NEAR:g}, so the list "
        "is the popular one.",
        f"Threshold: a rating <= {threshold:g} of 5. HR@10 counts a held-out movie near a "
        "disliked one as a miss when it is pushed away: MovieLens users often rate low what "
        "they watch next to what they like, so a push that is a product choice costs some "
        "leave-last-out accuracy on those users (the push's shape was chosen on validation).",
    ]
    return table, notes


def request_cost(
    recommender: Recommender, histories: list[History], diversities: list[float], rounds: int
) -> dict[float, float]:
    """Median µs per recommend() for each diversity, rounds interleaved over the same
    histories (A/B/A/B...), so a slow moment of the shared machine hits each alike."""
    times: dict[float, list[float]] = {d: [] for d in diversities}
    sample = histories[:100]
    for _ in range(rounds):
        for diversity in diversities:
            started = time.perf_counter()
            for history in sample:
                recommender.recommend(history, K, diversity=diversity)
            times[diversity].append((time.perf_counter() - started) / len(sample) * 1e6)
    return {d: float(np.median(t)) for d, t in times.items()}


def plot(rows: dict[float, Scores], baseline: Scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    x = [r.ild_embedding / baseline.ild_embedding - 1 for r in rows.values()]
    y = [r.hr / baseline.hr - 1 for r in rows.values()]
    ax.plot([100 * v for v in x], [100 * v for v in y], "o-", color="#2563eb")
    for d, xv, yv in zip(rows, x, y, strict=True):
        ax.annotate(f"{d:g}", (100 * xv, 100 * yv), textcoords="offset points", xytext=(4, 4))
    ax.axhline(-5, color="#9ca3af", ls="--", lw=1)
    ax.axvline(20, color="#9ca3af", ls="--", lw=1)
    ax.set_xlabel("intra-list diversity (embedding), % over diversity = 0")
    ax.set_ylabel("HR@10, % change from diversity = 0")
    ax.set_title("The diversity knob on ml-latest-small (labels: diversity)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts"))
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    args, run = begin_run(parser)
    load = os.getloadavg()[0]
    towers = load_towers(args.model, "latest")
    dataset = load_dataset(args.data)
    config = towers.manifest["config"]
    split = leave_last_out(
        dataset,
        min_rating=config["min_rating"],
        cold_fraction=config["cold_fraction"],
        seed=towers.manifest["seed"],
    )
    recommender, vectors = catalog_recommender(towers, dataset)
    cases = split.cases("test")
    ratings = rating_of(dataset)
    histories = [
        case_history(split, user, movies, ratings)
        for user, movies in zip(cases.users, cases.histories, strict=True)
    ]
    genres = [frozenset(m.genres) for m in dataset.movies]
    information = self_information(split)
    rows: dict[float, Scores] = {}
    for diversity in DIVERSITIES:
        rows[diversity] = measure(
            recommender, cases, histories, split, vectors, genres, information, diversity
        )
        console.print(f"diversity {diversity:g}: HR@10 {rows[diversity].hr:.4f}")
    base = rows[0.0]
    table = Table(
        title=f"Diversity vs accuracy: {len(cases)} held-out users, model {towers.version}"
    )
    for name in ("diversity", "HR@10", "NDCG@10", "coverage", "ILD embedding", "ILD genre"):
        table.add_column(name, justify="right")
    table.add_column("novelty (bits)", justify="right")
    table.add_column("HR@10 vs 0 [95 % CI]", justify="right")
    table.add_column("ILD emb. vs 0", justify="right")
    for diversity, r in rows.items():
        table.add_row(
            f"{diversity:g}",
            f"{r.hr:.4f}",
            f"{r.ndcg:.4f}",
            f"{r.coverage:.3f}",
            f"{r.ild_embedding:.3f}",
            f"{r.ild_genre:.3f}",
            f"{r.novelty:.2f}",
            r.hr_change(base),
            f"{r.ild_embedding / base.ild_embedding - 1:+.1%}",
        )
    cost = request_cost(recommender, histories, [0.0, 0.3, 1.0], args.rounds)
    timing = Table(title=f"recommend() per request, median of {args.rounds} interleaved rounds")
    timing.add_column("diversity", justify="right")
    timing.add_column("µs", justify="right")
    timing.add_column("vs diversity 0", justify="right")
    for diversity, us in cost.items():
        timing.add_row(f"{diversity:g}", f"{us:.0f}", f"{us / cost[0.0]:.2f}x")
    console.print(table, timing)
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, base, PLOT)
    at = rows[0.3]
    goal = (
        f"Goal at diversity 0.3: ILD (embedding) +20 % or more for at most 5 % of HR@10. "
        f"Measured: ILD {at.ild_embedding / base.ild_embedding - 1:+.1%}, "
        f"HR@10 {at.hr / base.hr - 1:+.1%}. Curve: docs/diversity.png. Load {load:.2f} at start."
    )
    how = (
        "MMR over a pool of max(50, 5k) candidates from the index (service/rerank.py): each "
        "pick maximizes (1 - d) x score (the user vector's inner product, a cosine) - d x its "
        "mean cosine to the picks so far. Histories keep their ratings, so a rating <= 2 is a "
        "dislike here as in the service (not read by the tower, its neighbours pushed down). "
        "The HR@10 interval is that of the paired change on the same users."
    )
    run.record("diversity", table, timing, notes=[goal, how])
    dislikes, dislike_notes = dislike_figures(recommender, towers, split, cases, histories, vectors)
    console.print(dislikes, *dislike_notes)
    run.record("dislikes", dislikes, notes=dislike_notes)


if __name__ == "__main__":
    main()
