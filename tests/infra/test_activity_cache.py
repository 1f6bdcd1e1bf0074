"""User activity in a Redis of its own (activityCache) that may evict; the catalog never does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as sm
from aws_cdk.assertions import Template

from infra.cache import PORT, RedisCache
from infra.config import StageConfig
from service.config import Settings
from tests.infra import tasks
from tests.infra.stages import ACTIVITY_NODE_GROUPS
from tests.support.infra import Synth

# Synthesizes the whole CDK app (jsii + node): `make test` runs it, `make test-fast` skips it.
pytestmark = pytest.mark.slow


def environment(synth: Synth) -> dict[str, Any]:
    return tasks.environment(synth, synth.stack.api)


def groups(synth: Synth) -> dict[str, dict[str, Any]]:
    """Replication groups by construct: 'catalog' and 'activity'."""
    found = synth.resources("AWS::ElastiCache::ReplicationGroup")
    named = {"catalog": synth.stack.cache, "activity": synth.stack.activity_cache}
    return {
        name: found[synth.stack.get_logical_id(cache.replication_group)]["Properties"]
        for name, cache in named.items()
        if cache is not None
    }


def policy(synth: Synth, group: dict[str, Any]) -> dict[str, str]:
    params = synth.resources("AWS::ElastiCache::ParameterGroup")
    return params[group["CacheParameterGroupName"]["Ref"]]["Properties"]["Properties"]  # type: ignore[no-any-return]


def test_by_default_activity_shares_the_catalog_redis_which_never_evicts(synth: Synth) -> None:
    assert synth.stack.activity_cache is None
    (catalog,) = groups(synth).values()
    assert policy(synth, catalog) == {"maxmemory-policy": "noeviction"}
    assert not {"MOVIE_RECS_ACTIVITY_URL", "MOVIE_RECS_ACTIVITY_CLUSTER"} & set(environment(synth))


def test_a_separate_activity_cluster_evicts_old_histories_only(prod: Synth) -> None:
    found = groups(prod)
    catalog, activity = found["catalog"], found["activity"]
    assert policy(prod, catalog) == {"maxmemory-policy": "noeviction"}  # never the catalog
    # Every history key carries a TTL: volatile-lru drops the least recently used histories
    # and never a key without one.
    assert policy(prod, activity) == {"maxmemory-policy": "volatile-lru", "cluster-enabled": "yes"}
    assert activity["ClusterMode"] == "enabled"
    assert activity["NumNodeGroups"] == ACTIVITY_NODE_GROUPS
    assert activity["ReplicasPerNodeGroup"] == 1
    assert "NumCacheClusters" not in activity
    for key in ("MultiAZEnabled", "AutomaticFailoverEnabled", "AtRestEncryptionEnabled"):
        assert activity[key] is True
    assert activity["TransitEncryptionMode"] == "required"
    # One AUTH token for both (the service's MOVIE_RECS_STORE_PASSWORD is the default of both).
    assert activity["AuthToken"] == catalog["AuthToken"]


def test_the_task_is_told_where_activity_lives_and_that_it_is_a_cluster(prod: Synth) -> None:
    env = environment(prod)
    assert env["MOVIE_RECS_ACTIVITY_CLUSTER"] == "true"
    # The retrain task learns from the events kept there: it is told the same.
    retrain = tasks.environment(prod, prod.stack.retrain)
    for name in ("MOVIE_RECS_ACTIVITY_URL", "MOVIE_RECS_ACTIVITY_CLUSTER", "MOVIE_RECS_STORE_URL"):
        assert retrain[name] == env[name]
    url = json.dumps(env["MOVIE_RECS_ACTIVITY_URL"])
    assert prod.stack.activity_cache is not None
    activity = prod.stack.get_logical_id(prod.stack.activity_cache.replication_group)
    assert url.startswith('{"Fn::Join": ["", ["rediss://"')
    assert f'"{activity}", "ConfigurationEndPoint.Address"' in url  # any node finds the others
    assert "@" not in url and "resolve:secretsmanager" not in url
    assert not url.endswith('"/0"]]}')  # a cluster has database 0 only: no path
    store = json.dumps(env["MOVIE_RECS_STORE_URL"])
    assert "PrimaryEndPoint.Address" in store and activity not in store


def test_only_the_api_and_retrain_tasks_reach_the_activity_redis(prod: Synth) -> None:
    cache = prod.stack.activity_cache
    assert cache is not None
    activity_sg = prod.logical_id(cache.security_group)
    api_sg = prod.logical_id(prod.stack.api.security_group)
    retrain_sg = prod.logical_id(prod.stack.retrain.security_group)
    rules = tasks.ingress(prod, activity_sg)
    assert sorted(
        (r["SourceSecurityGroupId"]["Fn::GetAtt"][0], r["FromPort"], r["ToPort"]) for r in rules
    ) == sorted([(api_sg, PORT, PORT), (retrain_sg, PORT, PORT)])


@pytest.mark.parametrize("fixture", ["synth", "prod"])
def test_every_variable_the_tasks_get_is_a_setting(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """A misspelt MOVIE_RECS_* name would be ignored by the service without a word."""
    stack: Synth = request.getfixturevalue(fixture)
    for owner in (stack.stack.api, stack.stack.retrain):
        container = tasks.container(stack, owner)
        names = [*tasks.environment(stack, owner), *(s["Name"] for s in container["Secrets"])]
        for name in names:
            assert name.startswith("MOVIE_RECS_"), name
            assert name.removeprefix("MOVIE_RECS_").lower() in Settings.model_fields, name


def _cache(**kwargs: Any) -> tuple[RedisCache, Template]:
    stack = Stack(App(), "Cache")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        subnet_configuration=[
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    token = sm.Secret(stack, "Token")
    cache = RedisCache(stack, "Redis", config=StageConfig(), vpc=vpc, auth_token=token, **kwargs)
    return cache, Template.from_stack(stack)


def test_without_cluster_mode_a_cache_is_one_primary_and_its_replica() -> None:
    cache, template = _cache(holds="user activity", eviction="volatile-lru")
    (group,) = template.find_resources("AWS::ElastiCache::ReplicationGroup").values()
    assert group["Properties"]["NumCacheClusters"] == 2
    assert "NumNodeGroups" not in group["Properties"] and "ClusterMode" not in group["Properties"]
    assert cache.url.startswith("rediss://") and cache.url.endswith("/0")
    assert cache.node_ids == ["001", "002"]


def test_cluster_nodes_are_named_as_elasticache_names_them() -> None:
    """The memory metrics' CacheClusterId: <group>-<shard 4 digits>-<node 3 digits>."""
    cache, _ = _cache(cluster_node_groups=2)
    assert cache.node_ids == ["0001-001", "0001-002", "0002-001", "0002-002"]
