"""`kustomize build` for the features deploy/k8s uses, in-process (no kustomize binary here).

Supported, and nothing else (an unknown kustomization key is an error, never ignored):
resources (files and directories), namespace, images, replicas, configMapGenerator and
secretGenerator (envs, files, literals; behavior create/merge/replace; content-hash name
suffix with references rewritten, as kustomize does, unless disableNameSuffixHash), patches
(strategic merge by kind and name, lists of named items merged by name, ``$patch: delete``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "replicas",
                        "configMapGenerator", "secretGenerator", "patches"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding",
                            "CustomResourceDefinition", "PriorityClass", "StorageClass"})
GENERATED = "x-kustomize-support/generated"   # internal marker, removed from the output


class KustomizeError(AssertionError):
    pass


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _env_file(path: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise KustomizeError(f"{path}:{n}: not KEY=VALUE")
        name, value = line.split("=", 1)
        data[name] = value
    return data


def _generate(root: Path, spec: dict[str, Any]) -> dict[str, str]:
    unknown = set(spec) - {"name", "behavior", "envs", "files", "literals", "type", "options"}
    if set(spec.get("options", {})) - {"disableNameSuffixHash"}:
        raise KustomizeError(f"{root}: generator options not supported: {spec['options']}")
    if unknown:
        raise KustomizeError(f"{root}: generator keys not supported here: {sorted(unknown)}")
    data: dict[str, str] = {}
    for env in spec.get("envs", []):
        data.update(_env_file(root / env))
    for item in spec.get("files", []):
        name, _, rel = item.rpartition("=") if "=" in item else ("", "", item)
        source = root / rel
        if not source.is_file():
            raise KustomizeError(f"{root}: generator file {rel} does not exist")
        data[name or source.name] = source.read_text(encoding="utf-8")
    for literal in spec.get("literals", []):
        name, value = literal.split("=", 1)
        data[name] = value
    return data


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge, simplified: maps deep-merged, lists of named maps merged by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and base and patch
            and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])):
        merged = [copy.deepcopy(i) for i in base]
        for item in patch:
            at = next((n for n, b in enumerate(merged) if b["name"] == item["name"]), None)
            if at is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[at] = _merge(merged[at], item)
        return merged
    return copy.deepcopy(patch)


def pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield spec["template"]["spec"]
    elif doc["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif doc["kind"] == "Pod":
        yield spec


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for pod in pod_specs(doc):
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def _build(root: Path) -> list[dict[str, Any]]:
    file = root / "kustomization.yaml"
    k = yaml.safe_load(file.read_text(encoding="utf-8"))
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{file}: keys not supported by this helper: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for rel in k.get("resources", []):
        path = (root / rel).resolve()
        docs.extend(_build(path) if path.is_dir() else load_docs(path))
    for kind, field in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in k.get(field, []):
            data = _generate(root, spec)
            if kind == "Secret":
                data = {n: base64.b64encode(v.encode()).decode() for n, v in data.items()}
            behavior = spec.get("behavior", "create")
            existing = next((d for d in docs if key(d) == (kind, spec["name"])
                             and d["metadata"].get("annotations", {}).get(GENERATED)), None)
            if behavior == "create":
                if existing is not None:
                    raise KustomizeError(f"{file}: {kind} {spec['name']} generated twice")
                hashed = not spec.get("options", {}).get("disableNameSuffixHash", False)
                marker = "hash" if hashed else "no-hash"
                doc: dict[str, Any] = {"apiVersion": "v1", "kind": kind,
                                       "metadata": {"name": spec["name"],
                                                    "annotations": {GENERATED: marker}},
                                       "data": data}
                if kind == "Secret":
                    doc["type"] = spec.get("type", "Opaque")
                docs.append(doc)
            elif existing is None:
                raise KustomizeError(f"{file}: {behavior} of {kind} {spec['name']}: "
                                     "no generated object of that name in the resources")
            elif behavior == "merge":
                existing["data"] = {**existing.get("data", {}), **data}
            elif behavior == "replace":
                existing["data"] = data
            else:
                raise KustomizeError(f"{file}: unknown generator behavior {behavior}")
    for entry in k.get("patches", []):
        patch = (load_docs(root / entry["path"])[0] if "path" in entry
                 else yaml.safe_load(entry["patch"]))
        if set(entry) - {"path", "patch"}:
            raise KustomizeError(f"{file}: patch targets/options not supported: {entry}")
        at = next((n for n, d in enumerate(docs) if key(d) == key(patch)), None)
        if at is None:
            raise KustomizeError(f"{file}: patch {key(patch)} matches no resource")
        if patch.get("$patch") == "delete":
            del docs[at]
        else:
            docs[at] = _merge(docs[at], patch)
    for entry in k.get("replicas", []):
        targets = [d for d in docs if d["metadata"]["name"] == entry["name"]
                   and d["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")]
        if not targets:
            raise KustomizeError(f"{file}: replicas for unknown {entry['name']}")
        for d in targets:
            d["spec"]["replicas"] = entry["count"]
    for image in k.get("images", []):
        for doc in docs:
            for c in containers(doc):
                name = c["image"].split("@")[0].rsplit(":", 1)[0] if "/" in c["image"] or \
                    ":" in c["image"] else c["image"]
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image['newTag']}" \
                        if "newTag" in image else image.get("newName", name)
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def name_hash(doc: dict[str, Any]) -> str:
    """kustomize's suffix: sha256 of the JSON of kind, name and data, hex mapped, 10 chars."""
    payload = {"data": doc.get("data", {}), "kind": doc["kind"], "name": doc["metadata"]["name"]}
    if doc["kind"] == "Secret":
        payload["type"] = doc.get("type", "Opaque")
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_refs(doc: dict[str, Any], kind: str, old: str, new: str) -> None:
    for pod in pod_specs(doc):
        for volume in pod.get("volumes", []):
            if kind == "ConfigMap" and volume.get("configMap", {}).get("name") == old:
                volume["configMap"]["name"] = new
            if kind == "Secret" and volume.get("secret", {}).get("secretName") == old:
                volume["secret"]["secretName"] = new
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            ref_kind = "configMapRef" if kind == "ConfigMap" else "secretRef"
            key_kind = "configMapKeyRef" if kind == "ConfigMap" else "secretKeyRef"
            for source in c.get("envFrom", []):
                if source.get(ref_kind, {}).get("name") == old:
                    source[ref_kind]["name"] = new
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get(key_kind)
                if ref and ref.get("name") == old:
                    ref["name"] = new


def build(root: Path) -> list[dict[str, Any]]:
    """The resources `kustomize build ROOT` outputs (generated names hash-suffixed)."""
    docs = _build(root)
    for doc in docs:
        annotations = doc["metadata"].get("annotations", {})
        marker = annotations.pop(GENERATED, None)
        if marker is not None and not annotations:
            del doc["metadata"]["annotations"]
        if marker == "hash":
            old = doc["metadata"]["name"]
            new = f"{old}-{name_hash(doc)}"
            doc["metadata"]["name"] = new
            for other in docs:
                _rename_refs(other, doc["kind"], old, new)
    return docs
