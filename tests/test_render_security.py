"""Safe by default (issue 16): default resources and the site's NetworkPolicy, rendered."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from test_render import body, objects, pod

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.settings import DEFAULT_RESOURCES, Settings


def httpd(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return pod(objs)["containers"][0]


# --- default resources ---

def test_a_site_without_resources_gets_the_documented_preset() -> None:
    assert httpd(objects())["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                             "limits": {"memory": "256Mi"}}
    assert DEFAULT_RESOURCES["limits"] == {"memory": "256Mi"}  # the figure the docs give


def test_resources_written_as_empty_still_mean_none() -> None:
    assert "resources" not in httpd(objects(resources={}))


def test_a_site_s_own_resources_replace_the_preset_whole() -> None:
    own = {"limits": {"cpu": "1"}}
    assert httpd(objects(resources=own))["resources"] == own


def test_the_preset_is_the_operator_s_setting() -> None:
    preset = {"requests": {"memory": "32Mi"}}
    assert httpd(objects(settings=Settings(default_resources=preset)))["resources"] == preset
    assert "resources" not in httpd(objects(settings=Settings(default_resources={})))


def test_the_preset_satisfies_autoscaling_s_cpu_request() -> None:
    objs = objects(autoscaling={"maxReplicas": 3})
    assert objs["HorizontalPodAutoscaler"]
    with pytest.raises(SpecError, match="spec.resources.requests.cpu"):
        render_body(body(autoscaling={"maxReplicas": 3}), Settings(default_resources={}))


def validate_all(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        for version in ("1.33.0", "1.37.0"):
            kubernetes_validate.validate(obj, version, strict=True)


def test_rendered_objects_with_the_preset_are_valid() -> None:
    validate_all(list(objects().values()))
