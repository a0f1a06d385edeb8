"""The files around a bundle's models: Dockerfile, compose file, README, and source hashes."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from exporter import __version__
from serving.k8s import app_name
from serving.serverconfig import server_flags

# Package data (serving/templates/), so a wheel install renders the same files as a checkout.
TEMPLATES = resources.files("serving") / "templates"
CHUNK = 1 << 20
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """One hash for a folder: every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def source_sha256(path: Path) -> str:
    return tree_sha256(path) if path.is_dir() else file_sha256(path)


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
