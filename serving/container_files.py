"""The files around a bundle's models that run it in a container: Dockerfile, compose file and
README (rendered from serving/templates/), and the server flags the image's CMD passes
(`kexport bundle` writes them; batching.config is serving/batching_config.py's, k8s manifests
serving/k8s.py's)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from exporter import __version__
from serving.k8s import app_name

# Package data (serving/templates/), so a wheel install renders the same files as a checkout.
TEMPLATES = resources.files("serving") / "templates"
K8S_SECTION = """
On Kubernetes (`k8s/`): build the image under the tag `k8s/kustomization.yaml` names (a digest of
the served versions), push it, point kustomize at your registry, apply:

```sh
TAG=$(awk '/newTag:/ {{print $2}}' k8s/kustomization.yaml)
docker build -t REGISTRY/{tag}:$TAG . && docker push REGISTRY/{tag}:$TAG
(cd k8s && kustomize edit set image {tag}=REGISTRY/{tag}:$TAG)
kubectl apply -k k8s
```
"""


def server_flags(batching: bool, poll_seconds: int = 60) -> list[str]:
    """tensorflow_model_server flags for this bundle, as the image's CMD passes them."""
    flags = [
        "--model_config_file=/models/models.config",
        f"--model_config_file_poll_wait_seconds={poll_seconds}",
    ]
    if batching:
        flags += ["--enable_batching=true", "--batching_parameters_file=/models/batching.config"]
    return flags


def render_docker_files(bundle: Path, manifest: dict) -> None:
    """Write Dockerfile, docker-compose.yml and README.md from the package's templates."""
    names = ", ".join(sorted(manifest["models"]))
    tag = app_name(manifest)  # lowercase, as image names must be; the k8s names match
    flags = server_flags(manifest.get("batching", False))
    config_files = "models.config batching.config" if manifest.get("batching") else "models.config"
    values = {
        "models": names,
        "tag": tag,
        "image": manifest["image"],
        "config_files": config_files,
        "flags": ", ".join(json.dumps(flag) for flag in flags),
        "kexport_version": __version__,
        "predict_lines": "\n".join(
            f"kexport predict --target localhost:8500 --model {name} INPUT.npy"
            for name in sorted(manifest["models"])
        ),
    }
    values["k8s_section"] = K8S_SECTION.format(tag=tag) if manifest.get("k8s") else ""
    for template, target in (
        ("Dockerfile.template", "Dockerfile"),
        ("docker-compose.yml.template", "docker-compose.yml"),
        ("README.bundle.md.template", "README.md"),
    ):
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        (bundle / target).write_text(text.format(**values), encoding="utf-8")
