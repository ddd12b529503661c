"""Every cluster file validated with its tool's own schema: the Ray cluster launcher file against the
``ray-schema.json`` shipped in the ray wheel (and Ray's own config checks), the Serve deploy file against
``ray.serve.schema.ServeDeploySchema`` (and built into our ServeConfig), the KubeRay manifests against the
RayCluster / RayJob / RayService CRD schemas in ``../shared/schemas/kuberay`` with unknown fields as errors
(as ``kubectl apply --validate=strict``), and one image everywhere, on the installed Ray version."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from conftest import REPO, shared_file

CLUSTER = REPO / "cluster"
KUBERAY = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}
IMAGE = "sweettok:0.1.0"


def strict(schema: dict) -> dict:
    """An OpenAPI v3 structural schema as strict JSON Schema (see ../shared/schemas/README.md)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.pop("x-kubernetes-int-or-string", False):
                node.pop("type", None)
                node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    schema["properties"]["metadata"] = {"type": "object"}  # left to the API server
    return schema


@pytest.fixture(scope="module")
def crds() -> dict[str, dict]:
    out = {}
    for kind, name in KUBERAY.items():
        with gzip.open(shared_file(f"schemas/kuberay/{name}.v1.schema.json.gz"), "rt") as f:
            out[kind] = strict(json.load(f))
    return out


def manifests() -> list[Path]:
    return sorted(CLUSTER.glob("kuberay-*.yaml"))


def test_every_kuberay_manifest_is_valid_under_its_crd(crds):
    kinds = set()
    for path in manifests():
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == "ray.io/v1", path
        jsonschema.validate(doc, crds[doc["kind"]])  # raises with the offending path
        kinds.add(doc["kind"])
    assert kinds == set(KUBERAY), "a RayCluster, a RayJob and a RayService"


def test_the_strict_crd_check_refuses_an_unknown_field(crds):
    doc = yaml.safe_load((CLUSTER / "kuberay-raycluster.yaml").read_text())
    doc["spec"]["headGroupSpec"]["rayStartParms"] = {}  # a typo kubectl --validate=strict refuses
    with pytest.raises(jsonschema.ValidationError, match="rayStartParms"):
        jsonschema.validate(doc, crds["RayCluster"])


def test_the_launcher_file_passes_rays_schema_and_config_checks():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "aws-a100.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))  # Ray's own preparation (defaults filled in) and checks
    assert not any("|| true" in c for c in config["initialization_commands"] + config["setup_commands"])


def test_the_serve_deploy_file_is_a_valid_serve_config_that_builds_our_app():
    from ray.serve.schema import ServeDeploySchema

    from sweettok_platform.serve import ServeConfig

    raw = yaml.safe_load((CLUSTER / "serve-config.yaml").read_text())
    deploy = ServeDeploySchema.model_validate(raw)
    app = deploy.applications[0]
    assert app.import_path == "sweettok_platform.serve.app:build_app"
    config = ServeConfig.from_dict(app.args)
    assert config.max_replicas == 8 and config.num_gpus == 1 and config.max_surge_percent == 100
    service = yaml.safe_load((CLUSTER / "kuberay-rayservice.yaml").read_text())
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == raw  # the RayService serves the same file


def test_one_image_on_the_installed_ray_version_everywhere():
    dockerfile = (CLUSTER / "image" / "Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray.__version__)}-py311-gpu$", dockerfile, re.M)
    for path in [CLUSTER / "aws-a100.yaml", *manifests()]:
        text = path.read_text()
        images = set(re.findall(r"^\s*image:\s*([^\s#]+)", text, re.M))
        assert images == {IMAGE}, (path.name, images)
        versions = set(re.findall(r'rayVersion:\s*"([^"]+)"', text))
        assert versions <= {ray.__version__}, (path.name, versions)
    worker_commands = [c for p in manifests() for c in re.findall(r"^\s*command:.*$", p.read_text(), re.M)
                       if "ray stop" not in c]
    assert worker_commands == [], "a container command override needs ray.io/overwrite-container-cmd"
