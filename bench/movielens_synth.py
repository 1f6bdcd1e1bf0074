"""A seeded synthetic dataset in the MovieLens-latest format (ratings.csv, movies.csv, tags.csv),
shaped like real logs, at any size from 100k to 25M ratings. Never committed: generated where
it is needed (the training benchmark, a test).

    .venv/bin/python -m bench.movielens_synth OUT_DIR --ratings 1000000 [--seed 0]

Shape: sizes follow MovieLens 25M (162k users, 62k movies at 25M; fewer movies per rating when
smaller); power-law movie popularity (Zipf) and user activity (Pareto, at least 20 ratings like
MovieLens); each user has one to three of 24 taste clusters and watches in sessions that stay in
one cluster, so the next movie is predictable from the recent ones; a cluster has its own genres,
title words, tags and era, so the content tower has something to learn; timestamps increase
along each user's history. Rows are written sorted by user then movie, as MovieLens does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

GENRES = [
    *("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary"),
    *("Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance"),
    *("Sci-Fi", "Thriller", "War", "Western"),
]
CLUSTERS = 24
SESSION = 8  # mean movies per session (one cluster)
STRAY = 0.1  # a session outside the user's clusters
FIRST_TS = 946_684_800  # 2000-01-01


@dataclass(frozen=True)
class Shape:
    users: int
    movies: int

    @classmethod
    def for_ratings(cls, ratings: int) -> Shape:
        """MovieLens 25M's proportions: 154 ratings a user; movies grow slower than ratings."""
        return cls(
            users=max(30, round(ratings / 154)),
            movies=max(200, round(62_000 * (ratings / 25_000_000) ** 0.25)),
        )


def generate(directory: Path, ratings: int, seed: int = 0) -> dict[str, int]:
    """Write the three files; returns the counts actually written."""
    rng = np.random.default_rng(seed)
    shape = Shape.for_ratings(ratings)
    directory.mkdir(parents=True, exist_ok=True)
    cluster = rng.integers(0, CLUSTERS, shape.movies)
    popularity = 1.0 / (rng.permutation(shape.movies) + 10.0) ** 1.1
    members = [np.flatnonzero(cluster == c) for c in range(CLUSTERS)]
    cumulative = [np.cumsum(popularity[m]) / popularity[m].sum() for m in members]
    movie_ids = np.sort(rng.choice(shape.movies * 3, size=shape.movies, replace=False)) + 1
    _write_movies(directory, rng, movie_ids, cluster, popularity)

    activity = _activity(rng, shape, ratings)
    written = 0
    with (directory / "ratings.csv").open("w", encoding="utf-8") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        lines: list[str] = []
        for user in range(shape.users):
            movies, stars, times = _history(rng, int(activity[user]), members, cumulative)
            order = np.argsort(movies, kind="stable")
            ids = movie_ids[movies[order]].tolist()
            lines.extend(
                f"{user + 1},{m},{r:.1f},{t}"
                for m, r, t in zip(ids, stars[order].tolist(), times[order].tolist(), strict=True)
            )
            written += len(ids)
            if len(lines) > 500_000:
                handle.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            handle.write("\n".join(lines) + "\n")
    tags = _write_tags(directory, rng, movie_ids, cluster, popularity, shape.users)
    return {"ratings": written, "users": shape.users, "movies": shape.movies, "tags": tags}


def _activity(rng: np.random.Generator, shape: Shape, ratings: int) -> np.ndarray:
    """Ratings per user: 20 + a Pareto tail, capped at a third of the catalog, summing to about
    `ratings` (the scale is refitted after the cap)."""
    tail = rng.pareto(1.4, shape.users)
    cap, extra = shape.movies // 3, max(0, ratings - 20 * shape.users)
    scale = extra / tail.sum()
    for _ in range(20):
        scale *= extra / max(np.minimum(tail * scale, cap - 20).sum(), 1.0)
    return np.minimum(np.round(20 + tail * scale), cap).astype(np.int64)


def _history(
    rng: np.random.Generator,
    count: int,
    members: list[np.ndarray],
    cumulative: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One user's movies (oldest first), star ratings and timestamps."""
    liked = rng.choice(CLUSTERS, size=int(rng.integers(1, 4)), replace=False)
    draws = 3 * count + 20  # repeats are dropped
    sessions = rng.geometric(1.0 / SESSION, size=draws // 2 + 2)
    session_cluster = np.where(
        rng.random(len(sessions)) < STRAY,
        rng.integers(0, CLUSTERS, len(sessions)),
        rng.choice(liked, size=len(sessions)),
    )
    slot_cluster = np.repeat(session_cluster, sessions)[:draws]
    movies = np.empty(len(slot_cluster), dtype=np.int64)
    for c in np.unique(slot_cluster):
        slots = slot_cluster == c
        picks = np.searchsorted(cumulative[c], rng.random(int(slots.sum())))
        movies[slots] = members[c][np.minimum(picks, len(members[c]) - 1)]
    _, first = np.unique(movies, return_index=True)  # each movie once, at its first draw
    keep = np.sort(first)[:count]
    movies, in_taste = movies[keep], np.isin(slot_cluster[keep], liked)
    if len(movies) < count:  # a heavy user who exhausted the clusters: strays at the end
        unseen = np.setdiff1d(np.concatenate(members), movies)
        extra = rng.choice(unseen, size=min(count - len(movies), len(unseen)), replace=False)
        movies = np.concatenate([movies, extra])
        in_taste = np.concatenate([in_taste, np.zeros(len(extra), dtype=bool)])
    keep = movies
    stars = np.clip(
        np.round((3.0 + 0.8 * in_taste + rng.normal(0, 0.9, len(keep))) * 2) / 2, 0.5, 5
    )
    start = FIRST_TS + int(rng.integers(0, 20 * 365 * 86_400))
    gaps = rng.exponential(3 * 3600, len(keep)).astype(np.int64) * (rng.random(len(keep)) < 0.7)
    return movies, stars, start + np.cumsum(gaps)


def _write_movies(
    directory: Path,
    rng: np.random.Generator,
    movie_ids: np.ndarray,
    cluster: np.ndarray,
    popularity: np.ndarray,
) -> None:
    common = [f"w{i}" for i in range(400)]
    own = [[f"c{c}w{i}" for i in range(60)] for c in range(CLUSTERS)]
    cluster_genres = [
        rng.choice(len(GENRES), size=int(rng.integers(1, 4)), replace=False)
        for _ in range(CLUSTERS)
    ]
    era = rng.integers(1930, 2015, CLUSTERS)
    with (directory / "movies.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("movieId", "title", "genres"))
        for i, movie_id in enumerate(movie_ids.tolist()):
            c = int(cluster[i])
            words = [own[c][j] for j in rng.integers(0, 60, int(rng.integers(1, 3)))]
            words += [common[j] for j in rng.integers(0, 400, int(rng.integers(0, 3)))]
            title = " ".join(words).title()
            year = int(np.clip(era[c] + rng.normal(0, 8), 1900, 2025))
            if rng.random() > 0.01:
                title = f"{title} ({year})"
            genres = {GENRES[g] for g in cluster_genres[c] if rng.random() < 0.8}
            if rng.random() < 0.2:
                genres.add(GENRES[int(rng.integers(0, len(GENRES)))])
            writer.writerow((movie_id, title, "|".join(sorted(genres)) or "(no genres listed)"))


def _write_tags(
    directory: Path,
    rng: np.random.Generator,
    movie_ids: np.ndarray,
    cluster: np.ndarray,
    popularity: np.ndarray,
    users: int,
) -> int:
    """A few tags on a popularity-weighted third of the movies, from the cluster's tag words."""
    tagged = rng.choice(
        len(movie_ids), size=len(movie_ids) // 3, replace=False, p=popularity / popularity.sum()
    )
    rows = 0
    with (directory / "tags.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("userId", "movieId", "tag", "timestamp"))
        for i in np.sort(tagged).tolist():
            c = int(cluster[i])
            for _ in range(int(rng.integers(1, 6))):
                word = (
                    f"tag{c}-{int(rng.integers(0, 15))}"
                    if rng.random() < 0.7
                    else f"mood{int(rng.integers(0, 40))}"
                )
                writer.writerow(
                    (int(rng.integers(1, users + 1)), int(movie_ids[i]), word, FIRST_TS)
                )
                rows += 1
    return rows


def main(
    directory: Annotated[Path, typer.Argument(help="Where to write the three CSV files.")],
    ratings: Annotated[int, typer.Option(min=1_000, help="About this many ratings.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Same seed and size: same files.")] = 0,
) -> None:
    counts = generate(directory, ratings, seed)
    typer.echo(", ".join(f"{v:,} {k}" for k, v in counts.items()) + f" -> {directory}")


if __name__ == "__main__":
    typer.run(main)
