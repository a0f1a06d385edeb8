"""`kexport bundle --k8s --kserve`: manifests validated offline against the Kubernetes schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.cli_helpers import run

CORE_FILES = ["deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]


@pytest.fixture(scope="module")
def k8s_bundle(k3_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("k8s") / "repo"
    result = run("bundle", out, "--model", f"clf={k3_files['sequential']}@1",
                 "--model", f"Pair_2={k3_files['two_in_two_out']}@1", "--k8s", "--kserve", "-q")
    assert result.exit_code == 0, result.output
    return out


def documents(bundle: Path, name: str) -> list[dict]:
    return list(yaml.safe_load_all((bundle / "k8s" / name).read_text()))


def one(bundle: Path, name: str) -> dict:
    (document,) = documents(bundle, name)
    return document


@pytest.mark.parametrize("name", CORE_FILES)
def test_manifests_validate_against_the_kubernetes_schema(k8s_bundle, name):
    import kubernetes_validate

    version = kubernetes_validate.utils.latest_version()
    for document in documents(k8s_bundle, name):
        kubernetes_validate.validate(document, version, strict=True)  # raises when invalid


def test_the_validator_refuses_a_broken_deployment(k8s_bundle):
    import kubernetes_validate

    deployment = one(k8s_bundle, "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8500"
    with pytest.raises(kubernetes_validate.utils.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.utils.latest_version(),
                                     strict=True)


def test_deployment_runs_the_bundle_image_hardened(k8s_bundle):
    deployment = one(k8s_bundle, "deployment.yaml")
    kustomization = one(k8s_bundle, "kustomization.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (image,) = kustomization["images"]
    assert container["image"] == f"{image['name']}:{image['newTag']}"
    assert deployment["metadata"]["name"] == "kexport-pair-2-clf"  # DNS-1123 from Pair_2
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 8500,
                                                                           "http": 8501}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/Pair_2",
                                                      "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "grpc"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the bundle Dockerfile's user
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert sorted(kustomization["resources"]) == CORE_FILES
    readme = (k8s_bundle / "README.md").read_text()
    assert "kubectl apply -k k8s" in readme and f"{image['name']}=REGISTRY/" in readme
    assert f"docker build -t {image['name']} ." in (k8s_bundle / "Dockerfile").read_text()


def test_service_hpa_and_pdb_point_at_the_deployment(k8s_bundle):
    deployment = one(k8s_bundle, "deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(k8s_bundle, "service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    hpa = one(k8s_bundle, "hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    pdb = one(k8s_bundle, "pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can proceed


def test_kserve_inference_service_per_model_on_the_tensorflow_runtime(k8s_bundle):
    services = documents(k8s_bundle, "kserve/inferenceservice.yaml")
    manifest = json.loads((k8s_bundle / "bundle.json").read_text())
    assert [s["metadata"]["name"] for s in services] == ["kexport-pair-2-clf-pair-2",
                                                         "kexport-pair-2-clf-clf"]
    for service in services:
        assert service["apiVersion"] == "serving.kserve.io/v1beta1"
        assert service["kind"] == "InferenceService"
        model = service["spec"]["predictor"]["model"]
        assert model["modelFormat"] == {"name": "tensorflow"}
        assert model["runtimeVersion"] == manifest["serving_version"]
        assert model["storageUri"].startswith("pvc://")
    assert one(k8s_bundle, "kserve/kustomization.yaml")["resources"] == ["inferenceservice.yaml"]


def test_memory_is_sized_from_the_models_and_a_new_version_is_a_new_image(k8s_bundle, k3_files,
                                                                        tmp_path):
    from serving.k8s import resources

    assert resources(0)["requests"]["memory"] == "256Mi"
    assert resources(100 << 20)["requests"]["memory"] == "556Mi"
    before = one(k8s_bundle, "kustomization.yaml")["images"][0]["newTag"]
    bundle = tmp_path / "repo"
    shutil.copytree(k8s_bundle, bundle)
    result = run("bundle", bundle, "--model", f"clf={k3_files['batchnorm']}@2", "-q")
    assert result.exit_code == 0, result.output
    after = one(bundle, "kustomization.yaml")["images"][0]["newTag"]
    assert after != before  # `kubectl apply -k` rolls the new version out
    assert (bundle / "k8s" / "kserve").is_dir()  # the bundle keeps writing what it was asked
