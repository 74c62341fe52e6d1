"""Offline tests of the Helm chart helm/graph-grpc-gateway.

Real Helm v4 (the Go SDK, through PyPI helm-python-sdk's libhelm_c) lints the
chart strictly and renders it, values schema included, for the chart's defaults
and for every value file in tests/helm/values/. Each rendered object is then
checked against Kubernetes' own OpenAPI schemas in strict mode (PyPI
kubernetes-validate), the ServiceMonitor against the prometheus-operator CRD
vendored in tests/helm/crds/, and the tests assert what the gateway needs from
its manifests. No cluster, no helm binary, no network.

Run: .cache/tools/helm-test/venv/bin/python -m pytest -q tests/helm
(scripts/tools.sh installs that venv; scripts/test.sh runs this.)

Objects are found by kind and the container by its name (`gateway`), so the
tests do not depend on template file names or layout.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.resources
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# CHART_UNDER_TEST points the harness at another copy of the chart (to try a change).
CHART_DIR = Path(os.environ.get("CHART_UNDER_TEST") or REPO / "helm" / "graph-grpc-gateway")
VALUES_DIR = HERE / "values"
SERVICEMONITOR_CRD = HERE / "crds" / "servicemonitors.monitoring.coreos.com.yaml"
# prometheus-operator v0.89.0's CRD as shipped in crates.io kopium 0.24.1 (crds/README.md).
SERVICEMONITOR_CRD_SHA256 = "1a1d7c6a06eb3e5dde19b0e3ec59753960f176c9e6d0f5aaa74df7320c60df99"

RELEASE = "gw"
NAMESPACE = "gateway-test"
CONTAINER = "gateway"

# Kubernetes versions every manifest must validate against (strict schemas of
# kubernetes-validate 1.37.0, which bundles 1.25 to 1.37): an older minor still
# supported by the managed clouds, and the newest one.
KUBE_VERSIONS = ("1.33.0", "1.37.0")
LINT_KUBE_VERSION = "v" + KUBE_VERSIONS[-1]

GRPC_HEALTH_SERVICE = "graphgateway.v1.SecurityConfigurationTaskService"
NONROOT_UID = 65532
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"

# The chart refuses to render without credentials (graph.auth.clientSecret is
# `required` in the default mode), so the "default" scenario is the chart's
# defaults plus the one value a minimal `helm install --set` must give.
DEFAULT_SECRET = "TEST-ONLY-default-secret-3e9a41c2"
SCENARIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "default": ((), (f"graph.auth.clientSecret={DEFAULT_SECRET}",)),
}
for _file in sorted(VALUES_DIR.glob("*.yaml")):
    SCENARIOS[_file.stem] = ((_file.name,), ())
EXPECTED_VALUE_FILES = {
    "demo",
    "client-secret",
    "existing-secret",
    "certificate",
    "workload-identity",
    "everything-on",
}

# ---------------------------------------------------------------------------
# Rendering with the real Helm library
# ---------------------------------------------------------------------------


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's composition of -f files and --set: maps merge deeply, the rest is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def user_values(files: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """What `helm template -f FILE... --set EXPR...` passes to the chart."""
    values: dict[str, Any] = {}
    for name in files:
        values = merge(values, helm.values_from_yaml((VALUES_DIR / name).read_text()))
    for expression in sets:
        values = merge(values, helm.parse_set_string(expression))
    return values


def render_uncached(files: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> Rendered:
    manifests = chart().render(
        user_values(files, sets), name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    return Rendered(manifests)


@functools.cache
def render(files: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> Rendered:
    return render_uncached(files, sets)


def render_scenario(name: str, extra_sets: tuple[str, ...] = ()) -> Rendered:
    files, sets = SCENARIOS[name]
    return render(files, sets + extra_sets)


class Rendered:
    """The objects of one render, found by kind; NOTES.txt kept as text."""

    def __init__(self, manifests: dict[str, str]) -> None:
        self.notes: str | None = None
        self.objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("/NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    assert isinstance(doc, dict), f"{path}: a document that is not a mapping"
                    self.objects.append(doc)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod_template(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]

    @property
    def pod_spec(self) -> dict[str, Any]:
        return self.pod_template["spec"]

    @property
    def pod_labels(self) -> dict[str, str]:
        return self.pod_template["metadata"].get("labels") or {}

    @property
    def pod_annotations(self) -> dict[str, str]:
        return self.pod_template["metadata"].get("annotations") or {}

    @property
    def container(self) -> dict[str, Any]:
        found = [c for c in self.pod_spec["containers"] if c["name"] == CONTAINER]
        assert len(found) == 1, f"expected one container named {CONTAINER!r}"
        return found[0]

    def container_ports(self) -> dict[str, int]:
        return {p["name"]: p["containerPort"] for p in self.container.get("ports", []) if "name" in p}

    def env(self) -> dict[str, dict[str, Any]]:
        """The container's environment: envFrom ConfigMaps rendered here, then env."""
        out: dict[str, dict[str, Any]] = {}
        for source in self.container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                for cm in self.all("ConfigMap"):
                    if cm["metadata"]["name"] == ref["name"]:
                        for key, value in (cm.get("data") or {}).items():
                            out[key] = {"name": key, "value": value, "from": "configMap"}
        for entry in self.container.get("env", []):
            out[entry["name"]] = entry
        return out

    def volume(self, name: str) -> dict[str, Any]:
        found = [v for v in self.pod_spec.get("volumes", []) if v["name"] == name]
        assert len(found) == 1, f"expected one volume named {name!r}"
        return found[0]

    def mounted_secret_file(self, path: str) -> tuple[str, str]:
        """The (Secret name, key) that a file path in the container comes from."""
        for mount in self.container.get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/")
            if not path.startswith(root + "/"):
                continue
            assert mount.get("readOnly") is True, f"credential mount {root} is not read-only"
            relative = path[len(root) + 1 :]
            volume = self.volume(mount["name"])
            secret = volume.get("secret")
            assert secret, f"{path} is mounted from volume {mount['name']}, not a Secret"
            if mount.get("subPath"):
                relative = mount["subPath"]
            items = secret.get("items")
            if items:
                keys = [i["key"] for i in items if i["path"] == relative]
                assert keys, f"no item of Secret {secret['secretName']} lands at {path}"
                return secret["secretName"], keys[0]
            return secret["secretName"], relative
        raise AssertionError(f"{path} is on no volume mount of the container")

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name!r}"
        return found[0]


def scenario_values(name: str) -> dict[str, Any]:
    """The chart's values for a scenario, as an install would compute them."""
    files, sets = SCENARIOS[name]
    return chart().merge_values(user_values(files, sets))


def auth_mode(values: dict[str, Any]) -> str:
    if values["emulator"]["enabled"]:
        return "emulator"
    return values["graph"]["auth"]["mode"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) matches labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip


def parse_duration(text: str) -> float:
    """Seconds in a humantime duration ("20s", "1m 30s", "500ms"), as the gateway parses it."""
    parts = re.findall(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]+)", text)
    assert parts and "".join(re.findall(r"\s*\d+(?:\.\d+)?\s*[a-zµ]+", text)) == text, (
        f"not a duration: {text!r}"
    )
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)


@functools.cache
def gateway_env_names() -> frozenset[str]:
    """Every environment variable the gateway binary reads (clap `env = "..."`)."""
    names = set()
    for source in (REPO / "src").rglob("*.rs"):
        names.update(re.findall(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"', source.read_text()))
    assert "GATEWAY_DRAIN_TIMEOUT" in names, "could not read the gateway's env names from src/"
    return frozenset(names)


# ---------------------------------------------------------------------------
# Schemas: Kubernetes (kubernetes-validate) and the ServiceMonitor CRD
# ---------------------------------------------------------------------------


@functools.cache
def kubernetes_definitions(version: str) -> dict[str, Any]:
    """kubernetes-validate's strict shared definitions (ObjectMeta & co) for a version."""
    path = (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
        / "_definitions.json"
    )
    return json.loads(path.read_text())


def strict_openapi(node: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema as strict JSON Schema (see crds/README.md)."""
    if isinstance(node, list):
        return [strict_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: strict_openapi(schema) for name, schema in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = strict_openapi(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict_openapi(s) for s in value]
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def servicemonitor_validator(version: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text())
    assert crd["spec"]["group"] == "monitoring.coreos.com"
    assert crd["spec"]["names"]["kind"] == "ServiceMonitor"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict_openapi(v1["schema"]["openAPIV3Schema"])
    definitions = kubernetes_definitions(version)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"]["apiVersion"] = {"const": "monitoring.coreos.com/v1"}
    schema["properties"]["kind"] = {"const": "ServiceMonitor"}
    schema["properties"]["metadata"] = {
        "$ref": definitions["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    registry = Resource.from_contents(definitions) @ Registry()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Why obj is not valid for Kubernetes `version` (strict); empty when it is."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("apiVersion") == "monitoring.coreos.com/v1" and obj.get("kind") == "ServiceMonitor":
        return [
            f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in servicemonitor_validator(version).iter_errors(obj)
        ]
    try:
        validated = kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    assert validated == kv_utils.major_minor(version), "validated against another version"
    return []


# kubernetes-validate reads and parses its JSON schemas again on every call;
# the files never change, so parse each once.
kv_utils.schema_contents = functools.cache(kv_utils.schema_contents)


# ---------------------------------------------------------------------------
# The harness itself
# ---------------------------------------------------------------------------


def test_value_files_are_the_expected_scenarios() -> None:
    assert set(SCENARIOS) - {"default"} == EXPECTED_VALUE_FILES


def test_kubernetes_versions_are_bundled() -> None:
    bundled = kv_utils.all_versions()
    for version in KUBE_VERSIONS:
        assert version in bundled, f"kubernetes-validate has no schemas for {version}: {bundled}"


def test_vendored_servicemonitor_crd_is_unchanged() -> None:
    digest = hashlib.sha256(SERVICEMONITOR_CRD.read_bytes()).hexdigest()
    assert digest == SERVICEMONITOR_CRD_SHA256, "crds/ changed: update crds/README.md and the pin"


def test_strict_lint_reports_warnings_as_errors(tmp_path: Path) -> None:
    """The library's strict lint really fails on a warning (a deprecated API)."""
    copied = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copied)
    (copied / "templates" / "zz-deprecated.yaml").write_text(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\n"
        "metadata:\n  name: deprecated\nspec:\n  minAvailable: 1\n"
    )
    report = helm.lint(copied, strict=True, kube_version=LINT_KUBE_VERSION)
    assert any("deprecated" in e for e in report["errors"]), report


def test_strict_kubernetes_validation_rejects_unknown_fields() -> None:
    deployment = copy.deepcopy(render_scenario("default").deployment)
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    for version in KUBE_VERSIONS:
        assert any("livenessProbes" in e for e in schema_errors(deployment, version))


def test_servicemonitor_schema_rejects_bad_objects() -> None:
    good = render_scenario("everything-on").one("ServiceMonitor")
    typo = copy.deepcopy(good)
    typo["spec"]["endpoints"][0]["intervall"] = "30s"
    bad_interval = copy.deepcopy(good)
    bad_interval["spec"]["endpoints"][0]["interval"] = "30 seconds"
    bad_label = copy.deepcopy(good)
    bad_label["metadata"]["labels"]["n"] = 1
    bad_kind = copy.deepcopy(good)
    bad_kind["kind"] = "PodMonitor"
    for version in KUBE_VERSIONS:
        assert schema_errors(good, version) == []
        for bad in (typo, bad_interval, bad_label, bad_kind):
            assert schema_errors(bad, version), bad


# ---------------------------------------------------------------------------
# Lint, schema, render, validate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["chart-defaults", *SCENARIOS])
def test_lint_strict(scenario: str) -> None:
    values = None if scenario == "chart-defaults" else user_values(*SCENARIOS[scenario])
    report = helm.lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=LINT_KUBE_VERSION
    )
    assert report["total_charts_linted"] == 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_chart_has_a_values_schema() -> None:
    schema = chart().schema
    assert schema is not None, "values.schema.json is missing"
    assert schema.get("additionalProperties") is False, "unknown top-level keys must be refused"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_values_pass_the_schema(scenario: str) -> None:
    chart().validate_schema(user_values(*SCENARIOS[scenario]))


@pytest.mark.parametrize(
    ("expression", "offending"),
    [
        ("replicaCount=three", "/replicaCount"),
        ("replicaCuont=2", "replicaCuont"),
        ("service.grpcPort=-1", "/service/grpcPort"),
        ("graph.cloud=mars", "/graph/cloud"),
    ],
    ids=["string-replicas", "unknown-top-level-key", "negative-port", "unknown-cloud"],
)
def test_schema_rejects_bad_values(expression: str, offending: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_uncached(("client-secret.yaml",), (expression,))
    message = str(caught.value)
    assert "schema" in message and offending in message, message


def test_defaults_alone_ask_for_credentials() -> None:
    """No credentials: the render fails and says which value to set."""
    with pytest.raises(helm.HelmError) as caught:
        render_uncached()
    assert "graph.auth.clientSecret" in str(caught.value)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_manifests_validate_strictly(scenario: str, version: str) -> None:
    rendered = render_scenario(scenario)
    assert rendered.objects
    errors = [e for obj in rendered.objects for e in schema_errors(obj, version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_objects_are_unique_and_labelled(scenario: str) -> None:
    rendered = render_scenario(scenario)
    keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in rendered.objects]
    assert len(keys) == len(set(keys)), keys
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
            assert key in labels, f"{obj['kind']} lacks label {key}"


# ---------------------------------------------------------------------------
# The pod
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_security_context(scenario: str) -> None:
    rendered = render_scenario(scenario)
    pod = rendered.pod_spec.get("securityContext") or {}
    ctr = rendered.container.get("securityContext") or {}

    def effective(key: str) -> Any:
        return ctr.get(key, pod.get(key))

    assert effective("runAsNonRoot") is True
    assert effective("runAsUser") == NONROOT_UID
    assert (effective("seccompProfile") or {}).get("type") == "RuntimeDefault"
    assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod-level seccomp"
    assert pod.get("runAsNonRoot") is True and pod.get("runAsUser") == NONROOT_UID
    assert ctr.get("readOnlyRootFilesystem") is True
    assert ctr.get("allowPrivilegeEscalation") is False
    assert ctr.get("privileged") in (None, False)
    assert "ALL" in (ctr.get("capabilities") or {}).get("drop", [])
    assert not (ctr.get("capabilities") or {}).get("add")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_resources_requests_and_limits(scenario: str) -> None:
    resources = render_scenario(scenario).container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert (resources.get(section) or {}).get(resource), f"resources.{section}.{resource}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_service_account_token_automount(scenario: str) -> None:
    rendered = render_scenario(scenario)
    values = scenario_values(scenario)
    sa_name = rendered.pod_spec.get("serviceAccountName")
    service_accounts = [sa for sa in rendered.all("ServiceAccount") if sa["metadata"]["name"] == sa_name]
    if auth_mode(values) == "workloadIdentity":
        # Azure's webhook mounts its own projected token (azure-identity-token),
        # which needs no automounted API token; the chart must not declare that
        # volume itself or the webhook's injection collides with it.
        volumes = {v["name"] for v in rendered.pod_spec.get("volumes", [])}
        assert "azure-identity-token" not in volumes
        return
    assert rendered.pod_spec.get("automountServiceAccountToken") is False
    for sa in service_accounts:
        assert sa.get("automountServiceAccountToken") is False


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_grace_period_exceeds_drain_timeout(scenario: str) -> None:
    rendered = render_scenario(scenario)
    drain = rendered.env().get("GATEWAY_DRAIN_TIMEOUT")
    assert drain and "value" in drain, "GATEWAY_DRAIN_TIMEOUT is not set in the pod"
    grace = rendered.pod_spec.get("terminationGracePeriodSeconds")
    assert isinstance(grace, int) and grace > parse_duration(drain["value"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_probes(scenario: str) -> None:
    rendered = render_scenario(scenario)
    ports = rendered.container_ports()
    assert "grpc" in ports and "admin" in ports, ports
    readiness = rendered.container.get("readinessProbe") or {}
    assert "grpc" in readiness, "readiness must be a native gRPC probe"
    assert readiness["grpc"]["port"] == ports["grpc"], "readiness probes the grpc container port"
    assert readiness["grpc"].get("service") == GRPC_HEALTH_SERVICE
    liveness = rendered.container.get("livenessProbe") or {}
    assert liveness.get("httpGet", {}).get("path") == "/healthz"
    assert liveness["httpGet"]["port"] in ("admin", ports["admin"])
    assert rendered.container.get("startupProbe"), "a startup probe"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_probe_and_service_ports_exist(scenario: str) -> None:
    """Every probe port and Service targetPort is a port the container declares."""
    rendered = render_scenario(scenario)
    ports = rendered.container_ports()
    numbers = set(ports.values())

    def declared(port: Any) -> bool:
        return port in ports if isinstance(port, str) else port in numbers

    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = rendered.container.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket", "grpc"):
            if handler in probe:
                assert declared(probe[handler]["port"]), f"{probe_name}.{handler}.port"
    for service in rendered.all("Service"):
        for port in service["spec"]["ports"]:
            assert declared(port.get("targetPort", port["port"])), port


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_service(scenario: str) -> None:
    rendered = render_scenario(scenario)
    service = rendered.one("Service")
    ports = rendered.container_ports()
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert "grpc" in by_name, "a Service port named grpc"
    assert by_name["grpc"].get("appProtocol") == "grpc"
    assert by_name["grpc"].get("targetPort") in ("grpc", ports["grpc"])
    others = [p for name, p in by_name.items() if name != "grpc"]
    assert any(p.get("targetPort") in ("admin", ports["admin"]) for p in others), (
        "a separate Service port for admin/metrics"
    )
    assert selects({"matchLabels": service["spec"]["selector"]}, rendered.pod_labels)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_selectors_match_the_pods(scenario: str) -> None:
    rendered = render_scenario(scenario)
    assert selects(rendered.deployment["spec"]["selector"], rendered.pod_labels)
    for kind in ("PodDisruptionBudget",):
        for obj in rendered.all(kind):
            assert selects(obj["spec"]["selector"], rendered.pod_labels), kind
    for policy in rendered.all("NetworkPolicy"):
        assert selects(policy["spec"]["podSelector"], rendered.pod_labels)
    for monitor in rendered.all("ServiceMonitor"):
        assert selects(monitor["spec"]["selector"], rendered.one("Service")["metadata"]["labels"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_topology_spread_and_rolling_update(scenario: str) -> None:
    rendered = render_scenario(scenario)
    constraints = rendered.pod_spec.get("topologySpreadConstraints") or []
    assert constraints, "topology spread constraints"
    for constraint in constraints:
        assert selects(constraint["labelSelector"], rendered.pod_labels)
    strategy = rendered.deployment["spec"].get("strategy") or {}
    assert strategy.get("type") == "RollingUpdate"
    assert {"maxUnavailable", "maxSurge"} <= set(strategy.get("rollingUpdate") or {})


def test_default_topology_spreads_over_zones_and_nodes() -> None:
    constraints = render_scenario("default").pod_spec["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in constraints)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_environment_is_read_by_the_gateway(scenario: str) -> None:
    """Every variable the chart sets (besides extraEnv) is one the binary reads."""
    rendered = render_scenario(scenario)
    extra = {e["name"] for e in scenario_values(scenario).get("extraEnv") or []}
    unknown = set(rendered.env()) - extra - gateway_env_names()
    assert not unknown, f"the gateway reads no such variables: {sorted(unknown)}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_emulator_only_in_demo_mode(scenario: str) -> None:
    rendered = render_scenario(scenario)
    container = rendered.container
    args = [*(container.get("command") or []), *(container.get("args") or [])]
    marker = rendered.pod_annotations.get("graph-grpc-gateway/mode", "")
    if auth_mode(scenario_values(scenario)) == "emulator":
        assert "serve" in args and "--emulator" in args, args
        assert "not for production" in marker, "the demo pod says so"
    else:
        assert "--emulator" not in args, args
        assert not marker


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(("client-secret.yaml",), ("terminationGracePeriodSeconds=15",))
    assert "drainTimeout" in str(caught.value)


def test_resources_cannot_be_dropped() -> None:
    with pytest.raises(helm.HelmValuesError):
        render_uncached(("client-secret.yaml",), ("resources.requests=null",))


# ---------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------


def client_secret_source(rendered: Rendered) -> tuple[str, str] | None:
    """(Secret name, key) the container reads its Graph client secret from, if any."""
    env = rendered.env()
    literal = env.get("AZURE_CLIENT_SECRET")
    if literal:
        assert "value" not in literal, "AZURE_CLIENT_SECRET must never be a literal"
        ref = literal["valueFrom"]["secretKeyRef"]
        return ref["name"], ref["key"]
    file_var = env.get("AZURE_CLIENT_SECRET_FILE")
    if file_var:
        return rendered.mounted_secret_file(file_var["value"])
    return None


SECRET_SCENARIOS = {
    "default": DEFAULT_SECRET,
    "client-secret": helm.values_from_yaml((VALUES_DIR / "client-secret.yaml").read_text())["graph"][
        "auth"
    ]["clientSecret"],
}


@pytest.mark.parametrize("scenario", list(SECRET_SCENARIOS))
def test_chart_created_secret(scenario: str) -> None:
    secret_value = SECRET_SCENARIOS[scenario]
    rendered = render_scenario(scenario)
    name, key = client_secret_source(rendered) or (None, None)
    assert name, "the container does not read the client secret"
    secret = rendered.named("Secret", name)
    encoded = (secret.get("data") or {}).get(key)
    plain = (secret.get("stringData") or {}).get(key)
    assert (base64.b64decode(encoded).decode() if encoded else plain) == secret_value


@pytest.mark.parametrize("scenario", list(SECRET_SCENARIOS))
def test_secret_value_lands_only_in_the_secret(scenario: str) -> None:
    secret_value = SECRET_SCENARIOS[scenario]
    needles = {secret_value, base64.b64encode(secret_value.encode()).decode()}
    rendered = render_scenario(scenario)
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            obj = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
        text = json.dumps(obj)
        for needle in needles:
            assert needle not in text, f"the client secret leaks into {obj['kind']}"
    for needle in needles:
        assert needle not in (rendered.notes or ""), "the client secret leaks into NOTES.txt"
    for cm in rendered.all("ConfigMap"):
        assert secret_value not in json.dumps(cm)
    for container in rendered.pod_spec["containers"] + rendered.pod_spec.get("initContainers", []):
        for entry in container.get("env", []):
            assert secret_value not in str(entry.get("value", "")), entry["name"]


def test_existing_secret() -> None:
    rendered = render_scenario("existing-secret")
    wanted = scenario_values("existing-secret")["graph"]["auth"]["existingSecret"]
    assert not rendered.has("Secret"), "the chart must not create a Secret in existingSecret mode"
    assert client_secret_source(rendered) == (wanted["name"], wanted["key"])


def test_certificate() -> None:
    rendered = render_scenario("certificate")
    wanted = scenario_values("certificate")["graph"]["auth"]["certificate"]
    assert not rendered.has("Secret")
    env = rendered.env()
    assert "AZURE_CLIENT_SECRET" not in env and "AZURE_CLIENT_SECRET_FILE" not in env
    path = env["AZURE_CLIENT_CERTIFICATE_PATH"]["value"]
    assert rendered.mounted_secret_file(path) == (wanted["secretName"], wanted["key"])


def test_workload_identity() -> None:
    rendered = render_scenario("workload-identity")
    values = scenario_values("workload-identity")
    assert rendered.pod_labels.get(WORKLOAD_IDENTITY_LABEL) == "true"
    sa = rendered.named("ServiceAccount", rendered.pod_spec["serviceAccountName"])
    annotations = sa["metadata"].get("annotations") or {}
    assert annotations.get(WORKLOAD_IDENTITY_CLIENT_ID) == values["graph"]["clientId"]
    assert not rendered.has("Secret")
    env = rendered.env()
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_SECRET_FILE", "AZURE_CLIENT_CERTIFICATE_PATH"):
        assert name not in env, name


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "workload-identity"])
def test_workload_identity_off_elsewhere(scenario: str) -> None:
    rendered = render_scenario(scenario)
    assert WORKLOAD_IDENTITY_LABEL not in rendered.pod_labels
    for sa in rendered.all("ServiceAccount"):
        assert WORKLOAD_IDENTITY_CLIENT_ID not in (sa["metadata"].get("annotations") or {})


def test_demo_has_no_credentials() -> None:
    rendered = render_scenario("demo")
    assert not rendered.has("Secret")
    assert client_secret_source(rendered) is None
    assert "AZURE_CLIENT_CERTIFICATE_PATH" not in rendered.env()
    notes = (rendered.notes or "").lower()
    assert "emulator" in notes and "not for production" in notes, "NOTES.txt must flag the demo"


# ---------------------------------------------------------------------------
# Roll-outs on change
# ---------------------------------------------------------------------------


def checksums(rendered: Rendered) -> dict[str, str]:
    return {k: v for k, v in rendered.pod_annotations.items() if k.startswith("checksum/")}


def test_checksum_annotations_follow_config_and_secret() -> None:
    files = ("client-secret.yaml",)
    base = checksums(render_uncached(files))
    assert base, "no checksum/* annotation on the pod template"
    assert checksums(render_uncached(files)) == base, "checksums are not deterministic"
    config_changed = checksums(render_uncached(files, ("gateway.logLevel=debug",)))
    assert config_changed != base, "a config change does not roll the pods"
    secret_changed = checksums(render_uncached(files, ("graph.auth.clientSecret=TEST-ONLY-rotated",)))
    assert secret_changed != base, "a new client secret does not roll the pods"


# ---------------------------------------------------------------------------
# Optional objects
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (("replicaCount=1",), False),
        (("replicaCount=2",), True),
        (("replicaCount=3", "podDisruptionBudget.enabled=false"), False),
        (("replicaCount=1", "autoscaling.enabled=true", "autoscaling.minReplicas=2"), True),
        (("replicaCount=3", "autoscaling.enabled=true", "autoscaling.minReplicas=1"), False),
    ],
    ids=["one-replica", "two-replicas", "disabled", "hpa-min-2", "hpa-min-1"],
)
def test_pod_disruption_budget(sets: tuple[str, ...], expected: bool) -> None:
    rendered = render(("existing-secret.yaml",), sets)
    assert rendered.has("PodDisruptionBudget") is expected
    if expected:
        pdb = rendered.one("PodDisruptionBudget")
        values = chart().merge_values(user_values(("existing-secret.yaml",), sets))
        running = (
            values["autoscaling"]["minReplicas"]
            if values["autoscaling"]["enabled"]
            else values["replicaCount"]
        )
        if isinstance(pdb["spec"].get("minAvailable"), int):
            assert pdb["spec"]["minAvailable"] < running, "the PDB would block every eviction"


def test_hpa_owns_the_replica_count() -> None:
    rendered = render_scenario("everything-on")
    hpa = rendered.one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        rendered.deployment["metadata"]["name"],
    )
    assert "replicas" not in rendered.deployment["spec"], "the HPA owns spec.replicas"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    fixed = render_scenario("everything-on", ("autoscaling.enabled=false",))
    assert fixed.deployment["spec"]["replicas"] == 3 and not fixed.has("HorizontalPodAutoscaler")


NETWORK_POLICY_RENDERS = {
    "everything-on": (("everything-on.yaml",), ()),
    "default-peers": (("existing-secret.yaml",), ("networkPolicy.enabled=true",)),
}


@pytest.mark.parametrize("case", list(NETWORK_POLICY_RENDERS))
def test_network_policy_egress_only_dns_and_https(case: str) -> None:
    files, sets = NETWORK_POLICY_RENDERS[case]
    rendered = render(files, sets)
    policy = rendered.one("NetworkPolicy")
    assert {"Ingress", "Egress"} <= set(policy["spec"]["policyTypes"])
    allowed = {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    seen = set()
    for rule in policy["spec"].get("egress") or []:
        assert rule.get("ports"), "an egress rule without ports allows every port"
        for port in rule["ports"]:
            assert "endPort" not in port
            seen.add((port.get("port"), port.get("protocol", "TCP")))
    assert seen == allowed, seen
    ports = rendered.container_ports()
    values = chart().merge_values(user_values(files, sets))["networkPolicy"]["ingressFrom"]
    grpc_rules = []
    for rule in policy["spec"].get("ingress") or []:
        for port in rule.get("ports") or []:
            assert port.get("port") in ports or port.get("port") in ports.values(), port
            if port.get("port") in ("grpc", ports["grpc"]):
                grpc_rules.append(rule)
    assert grpc_rules, "no ingress rule for the grpc port"
    for rule in grpc_rules:
        assert rule.get("from"), "gRPC ingress must name its callers"
        for peer in rule["from"]:
            # An empty namespaceSelector means "this namespace" (values.yaml):
            # the peer then has none, since `{}` would admit every namespace.
            assert peer.get("namespaceSelector") == (values["namespaceSelector"] or None)
            assert peer.get("podSelector", {}) == values["podSelector"]


def test_service_monitor() -> None:
    rendered = render_scenario("everything-on")
    values = scenario_values("everything-on")["serviceMonitor"]
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint.get("port") in service_ports, endpoint
        assert endpoint.get("path", "/metrics") == "/metrics"
        assert endpoint.get("interval") == values["interval"]
        assert endpoint.get("scrapeTimeout") == values["scrapeTimeout"]
    namespaces = monitor["spec"].get("namespaceSelector", {}).get("matchNames")
    assert namespaces in (None, [NAMESPACE])
    for key, value in values["labels"].items():
        assert monitor["metadata"]["labels"].get(key) == value


def test_optional_objects_off_by_default() -> None:
    rendered = render_scenario("default")
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
        assert not rendered.has(kind), kind


def test_everything_on() -> None:
    rendered = render_scenario("everything-on")
    values = scenario_values("everything-on")
    for kind in (
        "Deployment", "Service", "ServiceAccount", "ConfigMap",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
    ):  # fmt: skip
        assert rendered.has(kind), kind
    for obj in rendered.objects:
        for key, value in values["commonLabels"].items():
            assert obj["metadata"]["labels"].get(key) == value, f"commonLabels on {obj['kind']}"
    for key, value in values["podLabels"].items():
        assert rendered.pod_labels.get(key) == value
    for key, value in values["podAnnotations"].items():
        assert rendered.pod_annotations.get(key) == value
    service = rendered.one("Service")
    for key, value in values["service"]["annotations"].items():
        assert service["metadata"]["annotations"].get(key) == value
    sa = rendered.named("ServiceAccount", rendered.pod_spec["serviceAccountName"])
    for key, value in values["serviceAccount"]["annotations"].items():
        assert sa["metadata"]["annotations"].get(key) == value
    assert rendered.pod_spec.get("imagePullSecrets") == values["imagePullSecrets"]
    container = rendered.container
    assert container["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert container["imagePullPolicy"] == values["image"]["pullPolicy"]
    for entry in values["extraEnv"]:
        assert entry in container.get("env", []), entry
    for volume in values["extraVolumes"]:
        assert volume in rendered.pod_spec.get("volumes", []), volume
    for mount in values["extraVolumeMounts"]:
        assert mount in container.get("volumeMounts", []), mount
    assert rendered.pod_spec.get("nodeSelector") == values["nodeSelector"]
    assert rendered.pod_spec.get("tolerations") == values["tolerations"]
    assert rendered.pod_spec.get("affinity") == values["affinity"]


def test_default_image_tag_is_the_app_version() -> None:
    image = render_scenario("default").container["image"]
    assert image.endswith(":" + str(chart().metadata["appVersion"])), image


# ---------------------------------------------------------------------------
# NOTES.txt
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_notes(scenario: str) -> None:
    notes = render_scenario(scenario).notes
    assert notes, "NOTES.txt did not render"
    assert re.search(r"kubectl\b[^\n]*\bport-forward\b", notes), "no kubectl port-forward command"
    assert "grpcurl -plaintext" in notes
