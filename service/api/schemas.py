"""Request and response bodies of the public API (pydantic; they drive the OpenAPI schema)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_json

from embeddings.registry.record import VERSION_PATTERN
from service.store.fields import MovieId, Rating
from service.store.records import (
    EXPERIMENT_NAME_PATTERN,
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_ITEM_LENGTH,
    MAX_RATING,
    MAX_VARIANTS,
    MAX_WEIGHT,
    MAX_YEAR,
    MIN_RATING,
    MIN_YEAR,
    RECOMMENDATION_ID_PATTERN,
    STRATEGIES,
    EventKind,
)

if TYPE_CHECKING:
    from service.recommender import Item, Result

RecommendationId = Annotated[
    str,
    Field(
        pattern=RECOMMENDATION_ID_PATTERN,
        description="The `recommendation_id` of the list that led to this event.",
    ),
]
SessionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Who is shown the list (a user or session id): assigns an experiment's "
        "variant and attributes later events posted under this id.",
    ),
]

MAX_K = 100
MAX_HISTORY = 200
MAX_EVENTS = 200
MAX_GENRES = 20
MAX_FUTURE_SECONDS = 3600  # client clocks drift by minutes; hours ahead is a bug, not drift
DIVERSITY_HELP = (
    "0 (default): the ranking as scored; up to 1: a more varied list (MMR over a wider pool) "
    "for some accuracy (docs/benchmarks.md, diversity)."
)
MAX_PER_GENRE_HELP = "At most this many items share a genre, while the pool allows."

# Numbers in bodies must be finite (NaN would also poison a score or a sort).
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorBody(BaseModel):
    detail: str = Field(examples=["movie 999999 is not in the catalog"])


class EventIn(BaseModel):
    model_config = STRICT

    movie_id: MovieId
    kind: EventKind = Field(
        default="watch", description="`dislike`: not for me (pushes its neighbours down)."
    )
    rating: Rating | None = None
    timestamp: float | None = Field(
        default=None, ge=0, le=4_102_444_800, description="Unix seconds; default: now."
    )
    recommendation_id: RecommendationId | None = None

    @model_validator(mode="after")
    def _rating_matches_kind(self) -> EventIn:
        if self.kind == "rate" and self.rating is None:
            raise ValueError(f"a 'rate' event needs a rating ({MIN_RATING} to {MAX_RATING})")
        if self.kind != "rate" and self.rating is not None:
            raise ValueError(f"a {self.kind!r} event carries no rating; use kind 'rate'")
        if self.timestamp is not None and self.timestamp > time.time() + MAX_FUTURE_SECONDS:
            raise ValueError(
                f"timestamp is more than {MAX_FUTURE_SECONDS} s ahead of the server's clock"
            )
        return self

    def at(self) -> float:
        return self.timestamp if self.timestamp is not None else time.time()


class EventBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"events": [{"movie_id": "1", "kind": "rate", "rating": 5.0}]}]
        },
    )

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsAccepted(BaseModel):
    user_id: str
    accepted: int
    attributed: int = Field(
        default=0, description="Events attributed to a recommendation list shown to this user."
    )


class Because(BaseModel):
    movie_id: str
    title: str


class RecommendedItem(BaseModel):
    movie_id: str
    title: str
    genres: list[str]
    year: int | None
    score: float = Field(description="Inner product with the user vector (popularity for popular).")
    because: Because | None = Field(
        description="The liked or watched history movie nearest to this item (a watch or a "
        "rating of 3 or more; never a dislike). None when no such movie, and for popular."
    )
    reason: Literal["because", "people_like_you", "popular"] = Field(
        description="`because`: near the `because` movie; `people_like_you`: chosen from the "
        "user's history with no liked movie to name (popular with people like you); "
        "`popular`: the popular list (no usable history)."
    )


class Recommendations(BaseModel):
    user_id: str | None
    strategy: Literal["personalized", "popular"]
    model_version: str
    index_version: int = Field(description="Last change-log sequence applied by this replica.")
    history_length: int = Field(description="History items the user tower saw.")
    items: list[RecommendedItem]
    recommendation_id: str | None = Field(
        default=None, description="This list's id: send it with the events it leads to."
    )
    experiment: str | None = Field(default=None, description="The experiment running, if any.")
    variant: str | None = Field(default=None, description="This user's variant in it.")


class HistoryItem(BaseModel):
    model_config = STRICT

    movie_id: MovieId
    kind: EventKind = "watch"
    rating: Rating | None = None


class AnonymousRequest(BaseModel):
    """Recommendations for a session that has no user id: its recent history, newest first."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"history": [{"movie_id": "1"}, {"movie_id": "260"}], "k": 5}]
        },
    )

    history: list[HistoryItem] = Field(default_factory=list, max_length=MAX_HISTORY)
    k: int = Field(default=10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    genres: list[Annotated[str, Field(min_length=1, max_length=MAX_ITEM_LENGTH)]] | None = Field(
        default=None, max_length=MAX_GENRES
    )
    year_min: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    year_max: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    min_index_version: int | None = Field(default=None, ge=0)
    session_id: SessionId | None = None
    diversity: float = Field(default=0.0, ge=0, le=1, description=DIVERSITY_HELP)
    max_per_genre: int | None = Field(default=None, ge=1, le=MAX_K, description=MAX_PER_GENRE_HELP)


class MovieOut(BaseModel):
    movie_id: str
    title: str
    genres: list[str]
    year: int | None
    tags: list[str]
    version: int
    indexed: bool = Field(description="Whether this replica's index already holds it.")
    imdb_id: str | None = Field(default=None, description="https://www.imdb.com/title/tt<id>/")
    tmdb_id: str | None = Field(default=None, description="https://www.themoviedb.org/movie/<id>")


class SimilarMovies(BaseModel):
    movie_id: str
    model_version: str
    index_version: int
    items: list[RecommendedItem]
    recommendation_id: str | None = None
    experiment: str | None = None
    variant: str | None = None


class Readiness(BaseModel):
    ready: bool
    reason: str | None = None
    model_version: str | None = None
    index_version: int | None = None
    index_size: int | None = None
    lag: int | None = None
    store_error: str | None = Field(
        default=None, description="The store's last failure as this replica saw it (still ready)."
    )
    catalog_lost: str | None = Field(
        default=None,
        description="Set while the store's catalog is empty or shrunken: the last good index "
        "serves and a resync follows once the catalog is back.",
    )
    model_swap_error: str | None = Field(
        default=None,
        description="Why the model version the store names is not served yet (a failed fetch, "
        "load, check or index build): the previous model serves, and it is retried (still "
        "ready).",
    )


# --- the page's read routes: search, a user's events, sample users, the live catalog ---------
class MovieSummary(BaseModel):
    movie_id: str
    title: str
    genres: list[str]
    year: int | None


class MovieSearch(BaseModel):
    query: str
    index_version: int = Field(description="Searched at this index version (memory, no store).")
    items: list[MovieSummary]


class UserEvent(BaseModel):
    movie_id: str
    title: str | None = Field(description="None when the movie left the catalog.")
    year: int | None
    genres: list[str]
    kind: EventKind
    rating: float | None
    timestamp: float = Field(description="Unix seconds.")


class UserEvents(BaseModel):
    user_id: str
    items: list[UserEvent] = Field(description="Newest first.")


class SampleUser(BaseModel):
    user_id: str
    events: int = Field(description="Events kept for this user (at most activity_max_events).")


class SampleUsers(BaseModel):
    users: list[SampleUser]


class CatalogChange(BaseModel):
    seq: int
    op: Literal["upsert", "delete"]
    movie_id: str
    title: str | None
    year: int | None
    accepted_at: float = Field(description="Unix seconds when the webhook was accepted.")
    indexed: bool = Field(description="Whether this replica's index holds the movie now.")


class CatalogStatus(BaseModel):
    model_version: str
    index_version: int = Field(description="Last change-log sequence applied by this replica.")
    index_size: int
    index_kind: Literal["flat", "ivf"]
    head: int = Field(description="Newest change-log sequence this replica has seen.")
    lag: int = Field(description="Change-log entries not applied yet.")
    caught_up: bool
    genres: list[str]
    changes: list[CatalogChange] = Field(description="Applied changes after `after`, oldest first.")


def to_items(items: Sequence[Item]) -> list[RecommendedItem]:
    return [
        RecommendedItem(
            movie_id=item.movie_id,
            title=item.meta.title,
            genres=list(item.meta.genres),
            year=item.meta.year,
            score=round(item.score, 6),
            because=Because(movie_id=item.because[0], title=item.because[1])
            if item.because
            else None,
            reason=item.reason,
        )
        for item in items
    ]


@dataclass(frozen=True, slots=True)
class Shown:
    """What a response says about its list as shown: its id, and the experiment's variant."""

    recommendation_id: str
    experiment: str | None = None
    variant: str | None = None


def response_body(result: Result, user_id: str | None, shown: Shown | None = None) -> bytes:
    """The `Recommendations` JSON, written straight from plain values: the hot path skips
    building and re-validating response models (the schema stays `Recommendations`, and the
    OpenAPI and schemathesis tests hold this body to it)."""
    items = [
        {
            "movie_id": item.movie_id,
            "title": item.meta.title,
            "genres": item.meta.genres,
            "year": item.meta.year,
            "score": round(float(item.score), 6),
            "because": {"movie_id": item.because[0], "title": item.because[1]}
            if item.because
            else None,
            "reason": item.reason,
        }
        for item in result.items
    ]
    return to_json(
        {
            "user_id": user_id,
            "strategy": result.strategy,
            "model_version": result.model_version,
            "index_version": result.index_version,
            "history_length": result.history_length,
            "items": items,
            "recommendation_id": shown.recommendation_id if shown else None,
            "experiment": shown.experiment if shown else None,
            "variant": shown.variant if shown else None,
        }
    )


# --- experiments (admin) ----------------------------------------------------------------------
ExperimentName = Annotated[str, Field(min_length=1, max_length=64, pattern=EXPERIMENT_NAME_PATTERN)]


class VariantIn(BaseModel):
    model_config = STRICT

    name: ExperimentName
    weight: float = Field(default=1.0, gt=0, le=MAX_WEIGHT)
    strategy: Literal["personalized", "popular"] = Field(
        description=f"What the variant serves: one of {', '.join(STRATEGIES)}."
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=VERSION_PATTERN,
        description="A personalized variant's model version from the registry (default: the "
        "version every replica serves). Each version not served costs a replica an index.",
    )


class ExperimentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "model-vs-popular",
                    "variants": [
                        {"name": "model", "strategy": "personalized"},
                        {"name": "popular", "strategy": "popular"},
                    ],
                }
            ]
        },
    )

    name: ExperimentName
    variants: list[VariantIn] = Field(
        min_length=2, max_length=MAX_VARIANTS, description="The first is the control."
    )
    days: float | None = Field(default=None, gt=0, description="How long it assigns.")


class VariantOut(BaseModel):
    name: str
    weight: float
    strategy: str
    model: str | None = None


class ExperimentOut(BaseModel):
    name: str
    variants: list[VariantOut]
    created_at: float
    ends_at: float
    stopped_at: float | None
    running: bool


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class ComparisonOut(BaseModel):
    lift: float = Field(description="The variant's rate minus the control's.")
    ci_low: float = Field(description="95 % interval of the lift.")
    ci_high: float
    p_value: float = Field(description="Two-sided, against no difference.")
    relative_lift: float | None = Field(description="rate / control's rate - 1 (None at 0).")
    relative_ci_low: float | None
    relative_ci_high: float | None


class VariantReportOut(BaseModel):
    name: str
    strategy: str
    model: str | None = Field(description="The registry version it serves (None: the promoted).")
    weight: float
    users: int = Field(description="Users shown at least one list of this variant.")
    exposures: int
    attributed: int = Field(description="Events attributed to those lists.")
    converted_users: int = Field(description="Users with at least one attributed event.")
    per_user_rate: float | None = Field(description="converted_users / users.")
    per_exposure_rate: float | None = Field(description="attributed / exposures (delta method).")
    per_user: ComparisonOut | None = Field(description="Against the control (None for it).")
    per_exposure: ComparisonOut | None
    verdict: str | None = Field(
        description="By the per-user rate: 'better', 'worse' or 'no difference detected'; None "
        "below the minimum sample, with a sample ratio mismatch, or for the control."
    )


class ExperimentReport(BaseModel):
    experiment: str
    running: bool
    control: str
    min_users: int
    enough_data: bool
    srm_p_value: float = Field(description="Chi-square of users per variant against the weights.")
    srm: bool = Field(description="srm_p_value < 0.001: the split is broken, no verdict.")
    note: str
    variants: list[VariantReportOut]
