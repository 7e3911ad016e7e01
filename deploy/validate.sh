#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/kubernetes offline, without a cluster:
# - every manifest listed in kustomization.yaml (and every .yaml there is listed) against the Kubernetes JSON
#   schemas in strict mode (an unknown field, a wrong type, a missing required field or an unknown kind fails),
#   for each version in K8S_VERSIONS, with kubernetes-validate from PyPI, which bundles the schemas (installed
#   once into $HOME/.cache/connector-tools);
# - that the manifests agree with each other: the Deployment's selector and the Service's select the pod's
#   labels, named ports exist, the ConfigMap, Secret and the file given to --config exist;
# - the kustomization rendered (`kubectl kustomize`, or `kustomize build`), when either tool is installed;
# - the ConfigMap's pipelines.toml with `connector run --check`, given the environment the pod would have (the
#   Secret's values and the Deployment's env), when a connector binary is at hand: CONNECTOR_BIN, or the debug
#   build in $CARGO_TARGET_DIR (as scripts/test.sh leaves it).
# Usage: deploy/validate.sh [DIRECTORY]   (default deploy/kubernetes). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:-deploy/kubernetes}"
versions="${K8S_VERSIONS:-1.30.0 1.37.0}"

# Installed with pip --target (no venv: Debian's python3 has none without python3-venv) and used through
# PYTHONPATH by this script alone.
validator_version=1.37.0
tools="$HOME/.cache/connector-tools/kubernetes-validate-$validator_version"
python() { PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}" python3 "$@"; }
if ! python -c 'import kubernetes_validate' 2>/dev/null; then
  echo "installing kubernetes-validate $validator_version into $tools"
  rm -rf "$tools"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$tools" "kubernetes-validate==$validator_version"
fi

# Schemas and cross-checks. Arguments: versions, then `kustomization DIR` or `files FILE…`.
check_manifests() {
  python - "$@" <<'PYTHON'
import os
import sys

import yaml
from kubernetes_validate import utils

versions = sys.argv[1].split()
mode, paths = sys.argv[2], sys.argv[3:]
failures = []

if mode == "kustomization":
    directory = paths[0]
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = kustomization.get("resources") or []
    present = sorted(name for name in os.listdir(directory)
                     if name.endswith((".yaml", ".yml")) and name != "kustomization.yaml")
    for name in sorted(set(present) - set(listed)):
        failures.append(f"{directory}/{name}: not listed in kustomization.yaml's resources")
    for name in listed:
        if not os.path.isfile(os.path.join(directory, name)):
            failures.append(f"{directory}/kustomization.yaml: lists {name}, which does not exist")
    files = [os.path.join(directory, name) for name in listed if os.path.isfile(os.path.join(directory, name))]
else:
    files = paths

resources = []
for path in files:
    with open(path) as f:
        try:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as error:
            failures.append(f"{path}: not YAML: {error}")
            continue
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
            failures.append(f"{path}: a document without apiVersion and kind")
            continue
        name = f"{document['kind']}/{(document.get('metadata') or {}).get('name', '?')}"
        resources.append((path, document))
        for version in versions:
            try:
                utils.validate(document, version, strict=True)
            except utils.ValidationError as error:
                where = ".".join(str(item) for item in error.path) or "(top)"
                failures.append(f"{path}: {name} against Kubernetes {error.version}: {where}: {error.message}")
            except utils.SchemaNotFoundError as error:
                failures.append(f"{path}: {name}: {error.message}")
            except utils.VersionNotSupportedError as error:
                sys.exit(f"FATAL: {error.message}")

# Cross-checks a schema cannot make: what refers to what.
by_kind = {}
for path, document in resources:
    by_kind.setdefault(document["kind"], []).append((path, document))

def names(kind):
    return {d["metadata"]["name"] for _, d in by_kind.get(kind, [])}

def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())

pod_labels = []
for path, deployment in by_kind.get("Deployment", []):
    name = deployment["metadata"]["name"]
    spec = deployment["spec"]
    template = spec["template"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    pod_labels.append(labels)
    if not selects(spec["selector"].get("matchLabels"), labels):
        failures.append(f"{path}: Deployment/{name}: spec.selector.matchLabels does not select the pod template's labels")
    pod = template["spec"]
    mounts_by_volume = {}
    for volume in pod.get("volumes") or []:
        if "configMap" in volume and volume["configMap"]["name"] not in names("ConfigMap"):
            failures.append(f"{path}: Deployment/{name}: volume {volume['name']} names ConfigMap "
                            f"{volume['configMap']['name']}, which is not among the manifests")
    for container in pod["containers"]:
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports") or []}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                failures.append(f"{path}: Deployment/{name}: {probe} uses port {port}, which the container does not name")
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        scrape_port = annotations.get("prometheus.io/port")
        if scrape_port is not None and int(scrape_port) not in ports.values():
            failures.append(f"{path}: Deployment/{name}: prometheus.io/port {scrape_port} is no container port")
        for source in container.get("envFrom") or []:
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source and source[key]["name"] not in names(kind):
                    failures.append(f"{path}: Deployment/{name}: envFrom names {kind} {source[key]['name']}, "
                                    "which is not among the manifests")
        for mount in container.get("volumeMounts") or []:
            mounts_by_volume[mount["name"]] = mount["mountPath"]
        args = container.get("args") or []
        if "--config" in args:
            config = args[args.index("--config") + 1]
            found = False
            for volume in pod.get("volumes") or []:
                mount = mounts_by_volume.get(volume["name"])
                if "configMap" in volume and mount and os.path.dirname(config) == mount.rstrip("/"):
                    for _, configmap in by_kind.get("ConfigMap", []):
                        if configmap["metadata"]["name"] == volume["configMap"]["name"]:
                            found = os.path.basename(config) in (configmap.get("data") or {})
            if not found:
                failures.append(f"{path}: Deployment/{name}: --config {config} is no key of a mounted ConfigMap")

for path, service in by_kind.get("Service", []):
    name = service["metadata"]["name"]
    selector = service["spec"].get("selector")
    if not any(selects(selector, labels) for labels in pod_labels):
        failures.append(f"{path}: Service/{name}: its selector selects no pod of the Deployments")

for failure in failures:
    print(f"FAIL {failure}")
if failures:
    sys.exit(1)
print(f"ok: {len(resources)} resources ({', '.join(sorted(n for n in {d['kind'] for _, d in resources}))}) "
      f"valid against Kubernetes {', '.join(versions)} (strict), references consistent")
PYTHON
}

echo "== $dir: schemas (kubernetes-validate $validator_version, strict) and references"
check_manifests "$versions" kustomization "$dir"

rendered=$(mktemp --suffix=.yaml)
trap 'rm -rf "$rendered" "${checkdir:-}"' EXIT
if command -v kubectl >/dev/null; then
  echo "== $dir rendered by kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -m1 Kustomize || echo kustomize))"
  kubectl kustomize "$dir" > "$rendered"
  check_manifests "$versions" files "$rendered"
elif command -v kustomize >/dev/null; then
  echo "== $dir rendered by kustomize build"
  kustomize build "$dir" > "$rendered"
  check_manifests "$versions" files "$rendered"
else
  echo "== skipped rendering the kustomization: neither kubectl nor kustomize is installed"
fi

connector="${CONNECTOR_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}/debug/connector}"
if [ -x "$connector" ]; then
  echo "== pipelines.toml of the ConfigMap: $connector run --check, with the pod's environment"
  checkdir=$(mktemp -d)
  # The ConfigMap's pipelines.toml, and the variables the pod gets: the Secret's stringData and the literal env.
  python - "$dir" "$checkdir" <<'PYTHON'
import os
import sys

import yaml

directory, out = sys.argv[1], sys.argv[2]
documents = []
for name in yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))["resources"]:
    documents += [d for d in yaml.safe_load_all(open(os.path.join(directory, name))) if d]
environment = {}
for document in documents:
    if document["kind"] == "ConfigMap" and "pipelines.toml" in (document.get("data") or {}):
        with open(os.path.join(out, "pipelines.toml"), "w") as f:
            f.write(document["data"]["pipelines.toml"])
    if document["kind"] == "Secret":
        environment.update(document.get("stringData") or {})
    if document["kind"] == "Deployment":
        for container in document["spec"]["template"]["spec"]["containers"]:
            environment.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
with open(os.path.join(out, "env"), "w") as f:
    f.writelines(f"{key}={value}\0" for key, value in environment.items())
PYTHON
  # Only that environment (and PATH): a ${VAR} the pod would lack fails here as it would there.
  mapfile -d '' -t pod_env < "$checkdir/env"
  env -i PATH="$PATH" "${pod_env[@]}" "$connector" run --config "$checkdir/pipelines.toml" --check
else
  echo "== skipped connector run --check of pipelines.toml: no binary at $connector (set CONNECTOR_BIN)"
fi
echo "deploy/validate.sh: all checks passed"
