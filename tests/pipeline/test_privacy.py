"""privacy: only backends whose zone satisfies every constraint remain."""

from __future__ import annotations

from routing.pipeline.types import Outcome, PolicySnapshot

from .fleet import backend, cloud, config, local, request, route


def test_restricted_request_never_selects_a_non_private_backend() -> None:
    cfg = config(cloud("cheap", priority=0), local("slow", priority=90))
    result = route(cfg, request(privacy="restricted"))
    assert result.backend_name == "slow"
    assert "cheap" in result.annotations["privacy_excluded"]


def test_a_backend_without_a_zone_is_not_private() -> None:
    cfg = config(backend("nozone", zone=None))
    result = route(cfg, request(privacy="restricted"))
    assert result.outcome is Outcome.REJECT
    assert "no privacy zone" in result.rejections[0].reason


def test_a_zone_constraint_requires_exactly_that_zone() -> None:
    cfg = config(local("l"), backend("eu", zone="eu-private"))
    result = route(cfg, request(privacy="zone:eu-private"))
    assert result.backend_name == "eu"


def test_a_policy_and_a_request_constraint_must_both_hold() -> None:
    cfg = config(
        local("l"),
        backend("eu", zone="eu-private"),
        cloud("c"),
        policies=(PolicySnapshot("confidential", "*", privacy="restricted"),),
    )
    result = route(cfg, request(privacy="zone:eu-private", source="header"))
    assert result.backend_name == "eu"
    assert result.annotations["privacy_constraint"] == "zone:eu-private+restricted"
    assert result.to_dict()["constraints"]["privacy"]["sources"] == [
        "header",
        "policy:confidential",
    ]


def test_an_unrestricted_request_annotates_and_excludes_nothing() -> None:
    result = route(config(cloud("c")), request())
    assert result.annotations["privacy_constraint"] == "unrestricted"
    assert result.annotations["privacy_excluded"] == {}
    assert result.backend_name == "c"
