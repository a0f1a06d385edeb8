"""Kubernetes manifests for a bundle (`kexport bundle --k8s`, `--kserve`), as YAML from dicts.

k8s/
  deployment.yaml service.yaml hpa.yaml pdb.yaml   the bundle's image run by TF Serving
  kustomization.yaml                               `kubectl apply -k k8s/`
  kserve/inferenceservice.yaml kserve/kustomization.yaml   with --kserve: one InferenceService
                                                   per model on KServe's TensorFlow runtime

Probes: TF Serving registers no `grpc.health.v1.Health` service (its server.cc builds the gRPC
server with the model and prediction services only), so a native `grpc:` probe would keep every
pod unready. Readiness asks TF Serving's own model status over REST (404 until the model is
loaded); liveness checks the gRPC port accepts connections. The image tag is a digest of the
versions served, so a bundle with a new version is a new tag and `kubectl apply -k` rolls it out.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

from serving.models_config import ServedModel, aspired_versions

GRPC_PORT, REST_PORT = 8500, 8501
USER_ID = 10001  # the user the bundle's Dockerfile creates
BASE_MEMORY_MIB = 256  # tensorflow_model_server with no model loaded, rounded up
MEMORY_PER_MODEL_BYTE = 3  # a loaded SavedModel takes about its variables twice, plus arenas


def dns_name(*parts: str) -> str:
    """A DNS-1123 name (lowercase letters, digits, '-', at most 63) made of `parts`."""
    slug = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return slug[:63].rstrip("-")


def app_name(manifest: dict) -> str:
    """The name of the bundle's Deployment, Service, ... (and image): kexport-<models>."""
    return dns_name("kexport", *sorted(manifest["models"]))


def content_tag(manifest: dict) -> str:
    """An image tag that changes whenever a served version changes: a digest of the versions."""
    served = {name: {version: entry.get("source_sha256", entry.get("source"))
                     for version, entry in model["versions"].items()}
              for name, model in manifest["models"].items()}
    text = json.dumps(served, sort_keys=True) + json.dumps(manifest.get("image"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def served_bytes(bundle: Path, served: list[ServedModel]) -> int:
    """Bytes of every SavedModel version TF Serving will load (the version policy decides)."""
    total = 0
    for model in served:
        root = bundle / "models" / model.name
        on_disk = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())
        for version in aspired_versions(model, on_disk):
            total += sum(f.stat().st_size for f in (root / str(version)).rglob("*") if f.is_file())
    return total


def resources(model_bytes: int) -> dict:
    """Requests and limits sized from the served models (memory) and TF Serving's needs (CPU)."""
    memory_mib = BASE_MEMORY_MIB + -(-MEMORY_PER_MODEL_BYTE * model_bytes // (1 << 20))
    return {
        "requests": {"cpu": "500m", "memory": f"{memory_mib}Mi"},
        "limits": {"cpu": "2", "memory": f"{2 * memory_mib}Mi"},
    }


def deployment(name: str, image: str, sizes: dict, first_model: str) -> dict:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "tf-serving"}
    container = {
        "name": "serving",
        "image": image,
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                  {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"}],
        "resources": sizes,
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{first_model}", "port": "http"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": "grpc"}, "periodSeconds": 10,
                          "failureThreshold": 3},
        # Big models load slowly: liveness waits until the server first answers.
        "startupProbe": {"httpGet": {"path": f"/v1/models/{first_model}", "port": "http"},
                         "periodSeconds": 5, "failureThreshold": 60},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID,
                                "runAsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(labels)},
            # A new model version is a new image: start a new pod, wait for it to be ready,
            # only then stop an old one, so serving capacity never drops during a rollout.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod,
        },
    }


def service(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc",
                       "appProtocol": "grpc"},
                      {"name": "http", "port": REST_PORT, "targetPort": "http",
                       "appProtocol": "http"}],
        },
    }


def autoscaler(name: str) -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def disruption_budget(name: str) -> dict:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def inference_service(name: str, model: str, serving_version: str, sizes: dict) -> dict:
    """A KServe InferenceService for one model on KServe's TensorFlow runtime (TF Serving)."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": dns_name(name, model)},
        "spec": {"predictor": {"model": {
            "modelFormat": {"name": "tensorflow"},
            # The same TensorFlow Serving release the bundle's image and runtime check target.
            "runtimeVersion": serving_version,
            # Copy models/<model>/ of the bundle there (numbered version folders inside).
            "storageUri": f"pvc://{name}-models/{model}",
            "resources": sizes,
        }}},
    }


def k8s_documents(bundle: Path, manifest: dict,
                  served: list[ServedModel]) -> dict[str, list[dict]]:
    """Every file of k8s/ (relative path -> its YAML documents)."""
    name = app_name(manifest)
    image = f"{name}:{content_tag(manifest)}"
    sizes = resources(served_bytes(bundle, served))
    first_model = min(manifest["models"])
    files = {
        "deployment.yaml": [deployment(name, image, sizes, first_model)],
        "service.yaml": [service(name)],
        "hpa.yaml": [autoscaler(name)],
        "pdb.yaml": [disruption_budget(name)],
    }
    files["kustomization.yaml"] = [{
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [path for path in files],
        # `kustomize edit set image NAME=REGISTRY/NAME:TAG` points this at your registry.
        "images": [{"name": name, "newName": name, "newTag": content_tag(manifest)}],
    }]
    if manifest.get("kserve"):
        services = [inference_service(name, model, manifest["serving_version"], sizes)
                    for model in sorted(manifest["models"])]
        files["kserve/inferenceservice.yaml"] = services
        files["kserve/kustomization.yaml"] = [{
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["inferenceservice.yaml"]}]
    return files


def write_k8s(bundle: Path, manifest: dict, served: list[ServedModel]) -> list[Path]:
    """Write k8s/ into the bundle; returns the files written."""
    written = []
    for relative, documents in k8s_documents(bundle, manifest, served).items():
        path = bundle / "k8s" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
