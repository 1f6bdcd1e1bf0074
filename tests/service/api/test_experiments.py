"""Experiments through the API: admin only, assignment visible in every response, the variant's
strategy served, and bad definitions refused with a message."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from embeddings.artifacts import resolve_model_dir
from embeddings.registry import open_registry
from service.experiments.assignment import assign
from service.store.records import MAX_VARIANTS, Experiment, Exposure, Variant
from service.towers import Towers
from tests.service.api.test_exposures import events, flush
from tests.support.service import MakeClient

ROOT = "root-secret-0123456789ab"
READER = "reader-secret-0123456789"
KEYS = [f"ops:admin:{ROOT}", f"web:read:{READER}"]
BODY = {
    "name": "model-vs-popular",
    "variants": [
        {"name": "model", "strategy": "personalized"},
        {"name": "popular", "strategy": "popular"},
    ],
}


def create(client: TestClient, body: object = BODY) -> dict[str, object]:
    answer = client.post("/v1/experiments", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_only_an_admin_key_manages_experiments(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS, auth_disabled=False)
    admin = {"Authorization": f"Bearer {ROOT}"}
    reader = {"Authorization": f"Bearer {READER}"}
    assert client.post("/v1/experiments", json=BODY).status_code == 401
    assert client.post("/v1/experiments", json=BODY, headers=reader).status_code == 403
    assert client.get("/v1/experiments", headers=reader).status_code == 403
    assert client.post("/v1/experiments", json=BODY, headers=admin).status_code == 201
    listed = client.get("/v1/experiments", headers=admin).json()["experiments"]
    assert [e["name"] for e in listed] == ["model-vs-popular"] and listed[0]["running"]


def test_users_get_their_variant_and_its_strategy(client: TestClient) -> None:
    created = create(client)
    definition = Experiment(
        "model-vs-popular",
        (Variant("model", 1, "personalized"), Variant("popular", 1, "popular")),
        0,
        4e9,
        5e9,
    )
    assert created["running"] and created["variants"][0]["weight"] == 1  # type: ignore[index]
    users = ["1", "2", "3", "4", "5", "6", "7", "8"]
    for user in users:
        body = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        expected = assign(definition, user).name
        assert (body["experiment"], body["variant"]) == ("model-vs-popular", expected)
        assert body["strategy"] == ("popular" if expected == "popular" else "personalized")
    assert {assign(definition, u).name for u in users} == {"model", "popular"}
    again = client.get("/v1/users/1/recommendations").json()
    assert again["variant"] == assign(definition, "1").name  # stable
    anonymous = client.post("/v1/recommendations", json={"session_id": "s-9"}).json()
    assert anonymous["variant"] == assign(definition, "s-9").name
    assert client.post("/v1/recommendations", json={}).json()["experiment"] is None


def test_exposures_and_attributions_are_counted_per_variant(client: TestClient) -> None:
    create(client)
    body = client.get("/v1/users/1/recommendations", params={"k": 3}).json()
    client.get("/v1/users/1/recommendations", params={"k": 3})
    flush(client)
    assert events(client, "1", {"movie_id": body["items"][0]["movie_id"]}) == 1
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    assert client.portal is not None
    counts = client.portal.call(store.experiment_counts, "model-vs-popular")
    assert counts == {(body["variant"], "1"): (2, 1)}
    metrics = client.get("/metrics").text
    assert (
        f'movie_recs_attributed_events_total{{experiment="model-vs-popular",how="implicit",'
        f'variant="{body["variant"]}"}} 1.0' in metrics
    )


def test_stopping_ends_assignment_and_one_runs_at_a_time(client: TestClient) -> None:
    create(client)
    other = {**BODY, "name": "second"}
    assert client.post("/v1/experiments", json=other).status_code == 409
    assert client.post("/v1/experiments", json=BODY).status_code == 409
    stopped = client.post("/v1/experiments/model-vs-popular/stop").json()
    assert not stopped["running"] and abs(stopped["stopped_at"] - time.time()) < 60
    assert client.get("/v1/users/1/recommendations").json()["experiment"] is None
    assert client.post("/v1/experiments/nope/stop").status_code == 404
    assert create(client, other)["running"]


def test_bad_definitions_are_422_with_a_message(client: TestClient) -> None:
    variant = {"name": "v", "strategy": "popular"}
    many = [{**variant, "name": f"v{i}"} for i in range(MAX_VARIANTS + 1)]
    for bad in (
        {**BODY, "name": "X" * 65},
        {**BODY, "name": "has space"},
        {**BODY, "variants": [variant]},
        {**BODY, "variants": many},
        {**BODY, "variants": [variant, variant]},
        {**BODY, "variants": [{**variant, "strategy": "random"}, {**variant, "name": "w"}]},
        {**BODY, "variants": [{**variant, "weight": 0}, {**variant, "name": "w"}]},
        {**BODY, "days": 1000},
        {**BODY, "extra": 1},
    ):
        answer = client.post("/v1/experiments", json=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["detail"]
    assert client.post("/v1/experiments/BAD NAME/stop").status_code == 422
    assert client.get("/v1/experiments").json()["experiments"] == []


def seed_counts(client: TestClient, per_variant: dict[str, tuple[int, int]]) -> None:
    """Users shown lists in each variant (two lists each), of whom some had an event
    attributed: variant -> (users, converted users), written through the store."""
    store = client.app.state.app_state.store  # type: ignore[attr-defined]
    recorder = client.app.state.app_state.exposures  # type: ignore[attr-defined]
    assert client.portal is not None
    shown = []
    for variant, (count, _) in per_variant.items():
        for i in range(count):
            for _ in range(2):
                exposure = Exposure(
                    uuid.uuid4().hex, f"{variant}-{i}", ("1", "2"), "user", "popular", "m",
                    time.time(), "model-vs-popular", variant,
                )  # fmt: skip
                shown.append(exposure)
    client.portal.call(store.add_exposures, shown, recorder.limits)
    for exposure in shown[1::2]:
        variant, index = exposure.subject.rsplit("-", 1)  # type: ignore[union-attr]
        if int(index) < per_variant[variant][1]:
            assert client.portal.call(store.claim_attribution, exposure, "1", 3600.0)


def test_the_report_counts_each_variant_and_compares_it_to_the_control(
    make_client: MakeClient,
) -> None:
    client = make_client(experiment_min_users=200)
    create(client)
    seed_counts(client, {"model": (150, 30), "popular": (150, 15)})
    early = client.get("/v1/experiments/model-vs-popular/report").json()
    assert not early["enough_data"] and early["variants"][1]["verdict"] is None
    assert "no verdict until every variant has 200 users" in early["note"]

    seed_counts(client, {"model": (400, 80), "popular": (400, 40)})  # ids overlap: 400 each
    report = client.get("/v1/experiments/model-vs-popular/report").json()
    model, popular = report["variants"]
    assert (model["name"], model["users"], model["exposures"]) == ("model", 400, 1100)
    # users 0-29 had one attributed event in the first round, 0-79 one in the second
    assert (model["attributed"], model["converted_users"], model["per_user_rate"]) == (110, 80, 0.2)
    assert popular["per_user_rate"] == 0.1 and model["per_user"] is None
    lift = popular["per_user"]
    assert lift["lift"] == pytest.approx(-0.1) and lift["ci_high"] < 0 and lift["p_value"] < 1e-4
    assert lift["relative_lift"] == pytest.approx(-0.5)
    assert popular["per_exposure"]["lift"] == pytest.approx(55 / 1100 - 110 / 1100)
    assert popular["verdict"] == "worse" and report["enough_data"] and not report["srm"]
    assert report["srm_p_value"] == pytest.approx(1.0)


def test_the_report_is_admin_only_and_404_for_an_unknown_experiment(
    make_client: MakeClient,
) -> None:
    client = make_client(api_keys=KEYS, auth_disabled=False)
    admin = {"Authorization": f"Bearer {ROOT}"}
    reader = {"Authorization": f"Bearer {READER}"}
    assert client.post("/v1/experiments", json=BODY, headers=admin).status_code == 201
    url = "/v1/experiments/model-vs-popular/report"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=reader).status_code == 403
    empty = client.get(url, headers=admin).json()
    assert [v["users"] for v in empty["variants"]] == [0, 0] and empty["srm_p_value"] == 1
    missing = client.get("/v1/experiments/nope/report", headers=admin)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_a_variant_serves_another_model_version_from_the_registry(
    make_client: MakeClient, tiny_towers: Towers, other_tiny_model_dir: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    other = open_registry(registry).publish(resolve_model_dir(other_tiny_model_dir))
    client = make_client(registry_url=str(registry), model_cache_dir=tmp_path / "cache")
    body = {
        "name": "model-a-vs-b",
        "variants": [
            {"name": "a", "strategy": "personalized"},
            {"name": "b", "strategy": "personalized", "model": other},
        ],
    }
    created = create(client, body)
    assert created["variants"][1]["model"] == other  # type: ignore[index]
    definition = Experiment(
        "model-a-vs-b",
        (Variant("a", 1, "personalized"), Variant("b", 1, "personalized", other)),
        0,
        4e9,
        5e9,
    )
    users = [str(u) for u in range(1, 13)]
    deadline = time.monotonic() + 120
    while client.get("/v1/users/1/recommendations").json()["experiment"] is None:
        assert time.monotonic() < deadline, "the variant's model never became ready"
        time.sleep(0.1)  # until then nobody is assigned (its index is being built)
    for user in users:
        answer = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        expected = assign(definition, user).name
        assert answer["variant"] == expected
        assert answer["model_version"] == (other if expected == "b" else tiny_towers.version)
    assert {assign(definition, u).name for u in users} == {"a", "b"}
    report = client.get("/v1/experiments/model-a-vs-b/report").json()
    assert [v["model"] for v in report["variants"]] == [None, other]

    client.post("/v1/experiments/model-a-vs-b/stop")
    state = client.app.state.app_state  # type: ignore[attr-defined]
    assert state.tracking.models.status() == {}  # its index is let go


def test_a_variant_naming_a_version_nobody_has_is_422(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(registry_url=str(tmp_path / "empty-registry"))
    variants = [{"name": "a", "strategy": "personalized"}]
    for model, strategy, says in (
        ("v-missing", "personalized", "not in the registry"),
        ("v-missing", "popular", "only a personalized variant names a model"),
        ("bad/version", "personalized", "pattern"),
    ):
        bad = {
            "name": "x",
            "variants": [*variants, {"name": "b", "strategy": strategy, "model": model}],
        }
        answer = client.post("/v1/experiments", json=bad)
        assert answer.status_code == 422, answer.text
        assert says in answer.text
    assert client.get("/v1/experiments").json()["experiments"] == []
