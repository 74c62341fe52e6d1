"""Offline tests of the Helm chart helm/graph-grpc-gateway.

Real Helm v4 (the Go SDK, through PyPI helm-python-sdk's libhelm_c) lints the
chart strictly and renders it, values schema included, for the chart's defaults
and for every value file in tests/helm/values/ (the example caller policy in
tests/helm/policy/ goes in with --set-file). Each rendered object is then
checked against Kubernetes' own OpenAPI schemas in strict mode (PyPI
kubernetes-validate), the ServiceMonitor and PrometheusRule against the
prometheus-operator CRDs vendored in tests/helm/crds/, and the tests assert what
the gateway needs from its manifests. The alert rules go through `promtool check
rules` and the `promtool test rules` unit tests in tests/helm/promtool/ (Debian's
promtool, installed by scripts/tools.sh), the dashboards' queries through
`promtool check rules` too. No cluster, no helm binary, no network.

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
import shlex
import shutil
import subprocess
import tomllib
import urllib.parse
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
# The example caller policy (TOML), given to the chart as `--set-file policy.inline=...`.
EXAMPLE_POLICY = HERE / "policy" / "example.toml"
README = REPO / "README.md"
SERVICEMONITOR_CRD = HERE / "crds" / "servicemonitors.monitoring.coreos.com.yaml"
# prometheus-operator v0.89.0's CRD as shipped in crates.io kopium 0.24.1 (crds/README.md).
SERVICEMONITOR_CRD_SHA256 = "1a1d7c6a06eb3e5dde19b0e3ec59753960f176c9e6d0f5aaa74df7320c60df99"
PROMETHEUSRULE_CRD = HERE / "crds" / "prometheusrules.monitoring.coreos.com.yaml"
PROMETHEUSRULE_CRD_SHA256 = "1cf2b336cddbea3d310b9e29d82ddc4153614c1584f7565caa9df5a25550e601"
# The chart's own dashboards and alert rules (the files the chart renders).
DASHBOARDS_DIR = CHART_DIR / "dashboards"
RULES_FILE = CHART_DIR / "rules" / "graph-grpc-gateway.rules.yaml"
# `promtool test rules` unit tests of the alerts.
RULES_TESTS = HERE / "promtool" / "graph-grpc-gateway.rules.test.yaml"

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
# `required` in the default mode) and without a choice of who may call (a
# policy, or policy.allowUnauthenticated=true), so the "default" scenario is
# the chart's defaults plus the two values a minimal `helm install --set` must
# give.
DEFAULT_SECRET = "TEST-ONLY-default-secret-3e9a41c2"
DEFAULT_SETS = (f"graph.auth.clientSecret={DEFAULT_SECRET}", "policy.allowUnauthenticated=true")
# A scenario: value files (-f), --set and --set-file expressions.
Scenario = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
SCENARIOS: dict[str, Scenario] = {
    "default": ((), DEFAULT_SETS, ()),
}
# Value files whose scenario also reads a file with --set-file.
SET_FILES = {"tls-policy": (f"policy.inline={EXAMPLE_POLICY}",)}
for _file in sorted(VALUES_DIR.glob("*.yaml")):
    SCENARIOS[_file.stem] = ((_file.name,), (), SET_FILES.get(_file.stem, ()))
EXPECTED_VALUE_FILES = {
    "demo",
    "client-secret",
    "existing-secret",
    "certificate",
    "workload-identity",
    "everything-on",
    "tls-policy",
    "mtls",
    "mesh-policy",
    "budget-redis",
    "tracing",
    "tracing-http",
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


def user_values(
    files: tuple[str, ...] = (), sets: tuple[str, ...] = (), set_files: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What `helm template -f FILE... --set EXPR... --set-file EXPR...` passes to the chart."""
    values: dict[str, Any] = {}
    for name in files:
        values = merge(values, helm.values_from_yaml((VALUES_DIR / name).read_text()))
    for expression in sets:
        values = merge(values, helm.parse_set_string(expression))
    for expression in set_files:
        values = merge(values, helm.parse_set_file(expression))
    return values


def render_values(values: dict[str, Any]) -> Rendered:
    manifests = chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return Rendered(manifests)


def render_uncached(
    files: tuple[str, ...] = (), sets: tuple[str, ...] = (), set_files: tuple[str, ...] = ()
) -> Rendered:
    return render_values(user_values(files, sets, set_files))


@functools.cache
def render(
    files: tuple[str, ...] = (), sets: tuple[str, ...] = (), set_files: tuple[str, ...] = ()
) -> Rendered:
    return render_uncached(files, sets, set_files)


def render_scenario(name: str, extra_sets: tuple[str, ...] = ()) -> Rendered:
    files, sets, set_files = SCENARIOS[name]
    return render(files, sets + extra_sets, set_files)


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

    def mounted_file(self, path: str) -> tuple[str, str, str]:
        """(kind, name, key) of the Secret or ConfigMap that a file path in the container comes from.

        The mount must be read-only and a whole directory (no subPath): a file
        mounted with subPath never sees a changed Secret or ConfigMap.
        """
        for mount in self.container.get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/")
            if not path.startswith(root + "/"):
                continue
            assert mount.get("readOnly") is True, f"mount {root} is not read-only"
            assert not mount.get("subPath") and not mount.get("subPathExpr"), (
                f"{root} is mounted with subPath: changes would never reach the pod"
            )
            relative = path[len(root) + 1 :]
            volume = self.volume(mount["name"])
            if volume.get("secret"):
                kind, source, name = "Secret", volume["secret"], volume["secret"]["secretName"]
            elif volume.get("configMap"):
                kind, source, name = "ConfigMap", volume["configMap"], volume["configMap"]["name"]
            else:
                raise AssertionError(f"{path} is on volume {mount['name']}, not a Secret or ConfigMap")
            items = source.get("items")
            if items:
                keys = [i["key"] for i in items if i["path"] == relative]
                assert keys, f"no item of {kind} {name} lands at {path}"
                return kind, name, keys[0]
            assert "/" not in relative, f"{path} is not a key of {kind} {name}"
            return kind, name, relative
        raise AssertionError(f"{path} is on no volume mount of the container")

    def mounted_secret_file(self, path: str) -> tuple[str, str]:
        """The (Secret name, key) that a file path in the container comes from."""
        kind, name, key = self.mounted_file(path)
        assert kind == "Secret", f"{path} comes from a {kind}, not a Secret"
        return name, key

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name!r}"
        return found[0]


def scenario_values(name: str) -> dict[str, Any]:
    """The chart's values for a scenario, as an install would compute them."""
    return chart().merge_values(user_values(*SCENARIOS[name]))


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
    """Every environment variable the gateway binary reads.

    Clap's `env = "..."`, and the `env: "..."` of the settings table
    (src/settings.rs) that flags name as `env = settings::X.env`.
    """
    names = set()
    for source in (REPO / "src").rglob("*.rs"):
        names.update(re.findall(r'\benv\s*[=:]\s*"([A-Z][A-Z0-9_]*)"', source.read_text()))
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
        elif key == "pattern" and "(?i)" in value and not value.startswith("(?i)"):
            # Go's RE2 takes a flag group anywhere (`^(?i)(abort|warn)?$`);
            # Python only at the start, where it means the same here.
            out[key] = "(?i)" + value.replace("(?i)", "", 1)
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


# The vendored prometheus-operator CRDs, by kind.
MONITORING_CRDS = {"ServiceMonitor": SERVICEMONITOR_CRD, "PrometheusRule": PROMETHEUSRULE_CRD}


@functools.cache
def monitoring_validator(kind: str, version: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(MONITORING_CRDS[kind].read_text())
    assert crd["spec"]["group"] == "monitoring.coreos.com"
    assert crd["spec"]["names"]["kind"] == kind
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict_openapi(v1["schema"]["openAPIV3Schema"])
    definitions = kubernetes_definitions(version)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"]["apiVersion"] = {"const": "monitoring.coreos.com/v1"}
    schema["properties"]["kind"] = {"const": kind}
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
    if obj.get("apiVersion") == "monitoring.coreos.com/v1" and obj.get("kind") in MONITORING_CRDS:
        return [
            f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in monitoring_validator(obj["kind"], version).iter_errors(obj)
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


def test_vendored_prometheusrule_crd_is_unchanged() -> None:
    digest = hashlib.sha256(PROMETHEUSRULE_CRD.read_bytes()).hexdigest()
    assert digest == PROMETHEUSRULE_CRD_SHA256, "crds/ changed: update crds/README.md and the pin"


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
        ("gateway.graphMaxInFlight=1000001", "/gateway/graphMaxInFlight"),
        ("gateway.graphMaxQueued=-1", "/gateway/graphMaxQueued"),
        ("gateway.maxConnections=1000001", "/gateway/maxConnections"),
        ("gateway.graphMaxAnswerBytes=1073741825", "/gateway/graphMaxAnswerBytes"),
        ("gateway.azureTokenMaxAnswerBytes=1023", "/gateway/azureTokenMaxAnswerBytes"),
        ("gateway.graphMaxRetryAfter=forever", "/gateway/graphMaxRetryAfter"),
        ("gateway.graphMaxQueued=1000001", "/gateway/graphMaxQueued"),
        ("gateway.maxMessageBytes=67108865", "/gateway/maxMessageBytes"),
        ("gateway.graphMaxRetries=11", "/gateway/graphMaxRetries"),
        ("dashboards.enabled=yes", "/dashboards/enabled"),
        ("dashboards.namespace=Monitoring_NS", "/dashboards/namespace"),
        ("prometheusRule.enabeld=true", "enabeld"),
        ("prometheusRule.ruleLabels.bad-name=x", "bad-name"),
    ],
    ids=[
        "string-replicas",
        "unknown-top-level-key",
        "negative-port",
        "unknown-cloud",
        "too-many-graph-slots",
        "negative-graph-queue",
        "too-many-connections",
        "graph-answer-limit-too-large",
        "token-answer-limit-too-small",
        "retry-after-cap-not-a-duration",
        "too-long-a-graph-queue",
        "too-large-messages",
        "too-many-retries",
        "dashboards-switch-not-a-boolean",
        "dashboards-namespace-not-a-name",
        "prometheus-rule-unknown-key",
        "rule-label-not-a-prometheus-name",
    ],
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
def test_grace_period_exceeds_shutdown_delay_plus_drain_timeout(scenario: str) -> None:
    rendered = render_scenario(scenario)
    env = rendered.env()
    drain = env.get("GATEWAY_DRAIN_TIMEOUT")
    delay = env.get("GATEWAY_SHUTDOWN_DELAY")
    assert drain and "value" in drain, "GATEWAY_DRAIN_TIMEOUT is not set in the pod"
    assert delay and "value" in delay, "GATEWAY_SHUTDOWN_DELAY is not set in the pod"
    grace = rendered.pod_spec.get("terminationGracePeriodSeconds")
    assert isinstance(grace, int)
    assert grace > parse_duration(delay["value"]) + parse_duration(drain["value"])


# (shutdownDelay, drainTimeout, the shortest grace period that covers both):
# every duration form, parts summed, sub-second parts kept.
GRACE_CASES = [
    ("5s", "20s", 26),
    ("0s", "1m", 61),
    ("1m", "1m30s", 151),
    ("90s", "1h", 3691),
    ("500ms", "29500ms", 31),
    ("500ms", "29s", 30),
    ("1m30s", "1h1m", 3751),
    ("1.5s", "28s", 30),
]


@pytest.mark.parametrize(("delay", "drain", "shortest"), GRACE_CASES)
def test_the_grace_period_check_reads_every_duration_form(delay: str, drain: str, shortest: int) -> None:
    sets = (f"gateway.shutdownDelay={delay}", f"gateway.drainTimeout={drain}")
    rendered = render_uncached(("client-secret.yaml",), (*sets, f"terminationGracePeriodSeconds={shortest}"))
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == shortest
    env = rendered.env()
    assert env["GATEWAY_SHUTDOWN_DELAY"]["value"] == delay
    assert env["GATEWAY_DRAIN_TIMEOUT"]["value"] == drain
    assert shortest > parse_duration(delay) + parse_duration(drain)
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(("client-secret.yaml",), (*sets, f"terminationGracePeriodSeconds={shortest - 1}"))
    message = str(caught.value)
    for part in (
        f"terminationGracePeriodSeconds ({shortest - 1}) must be longer than",
        f"gateway.shutdownDelay ({delay}) plus gateway.drainTimeout ({drain})",
    ):
        assert part in message, message


@pytest.mark.parametrize(
    "expression",
    ["gateway.shutdownDelay=5", "gateway.shutdownDelay=5 s", "gateway.drainTimeout=soon", "gateway.idleTimeout=1m-"],
)
def test_a_value_that_is_not_a_duration_is_refused(expression: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_uncached(("client-secret.yaml",), (expression,))
    assert "schema" in str(caught.value)


def test_the_connection_settings_reach_the_pod() -> None:
    env = render_scenario("default").env()
    for name, value in {
        "GATEWAY_SHUTDOWN_DELAY": "5s",
        "GATEWAY_HANDSHAKE_TIMEOUT": "10s",
        "GATEWAY_KEEPALIVE_INTERVAL": "30s",
        "GATEWAY_KEEPALIVE_TIMEOUT": "10s",
        "GATEWAY_IDLE_TIMEOUT": "5m",
        "GATEWAY_MAX_CONNECTION_AGE": "30m",
        "GATEWAY_MAX_CONNECTION_AGE_GRACE": "1m",
        "GATEWAY_MAX_CONCURRENT_CALLS": "4096",
    }.items():
        assert env.get(name, {}).get("value") == value, name
        assert name in gateway_env_names(), name


def kubelet_can_ask_grpc_health(values: dict[str, Any]) -> bool:
    """Whether a kubelet gRPC probe (plaintext, no identity) can be answered.

    It needs a plaintext port, and a health check open to anonymous callers: no
    policy at all, or an inline policy whose [public] table opens health. A
    policy in a ConfigMap of the operator's cannot be read at render time.
    """
    if values["tls"]["enabled"]:
        return False
    policy = values["policy"]
    if policy["inline"]:
        public = tomllib.loads(policy["inline"]).get("public")
        return isinstance(public, dict) and public.get("health") is True
    return not policy["existingConfigMap"]


def assert_readiness(rendered: Rendered, over_grpc: bool) -> None:
    ports = rendered.container_ports()
    readiness = rendered.container.get("readinessProbe") or {}
    handlers = {"grpc", "httpGet", "tcpSocket", "exec"} & set(readiness)
    if over_grpc:
        assert handlers == {"grpc"}, f"readiness must be a native gRPC probe: {readiness}"
        assert readiness["grpc"]["port"] == ports["grpc"], "readiness probes the grpc container port"
        assert readiness["grpc"].get("service") == GRPC_HEALTH_SERVICE
    else:
        # The admin port is plain HTTP on a port of its own, whatever the gRPC port speaks.
        assert handlers == {"httpGet"}, f"readiness must ask the admin /readyz: {readiness}"
        assert readiness["httpGet"]["path"] == "/readyz"
        assert readiness["httpGet"]["port"] in ("admin", ports["admin"])
        assert readiness["httpGet"].get("scheme", "HTTP") == "HTTP"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_probes(scenario: str) -> None:
    rendered = render_scenario(scenario)
    ports = rendered.container_ports()
    assert "grpc" in ports and "admin" in ports, ports
    assert_readiness(rendered, kubelet_can_ask_grpc_health(scenario_values(scenario)))
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


# The pod's own facts from the downward API, which the gateway never reads:
# they exist for Kubernetes to expand $(POD_NAME) and the like in the
# variables after them (test_every_variable_reference_is_defined_before_it).
DOWNWARD_API_ENV = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "NODE_NAME": "spec.nodeName",
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_environment_is_read_by_the_gateway(scenario: str) -> None:
    """Every variable the chart sets (besides extraEnv) is one the binary reads (or announced)."""
    rendered = render_scenario(scenario)
    extra = {e["name"] for e in scenario_values(scenario).get("extraEnv") or []}
    unknown = set(rendered.env()) - extra - gateway_env_names() - set(DOWNWARD_API_ENV)
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


def test_answer_limits_reach_the_gateway() -> None:
    """The limits on what Graph may ask for or send are rendered, defaults and overrides alike."""
    env = render_scenario("client-secret").env()
    assert env["GRAPH_MAX_RETRY_AFTER"]["value"] == "180s"
    assert env["GRAPH_MAX_ANSWER_BYTES"]["value"] == "16777216"
    assert env["AZURE_TOKEN_MAX_ANSWER_BYTES"]["value"] == "65536"
    env = render_uncached(
        ("client-secret.yaml",),
        (
            "gateway.graphMaxRetryAfter=30s",
            "gateway.graphMaxAnswerBytes=1048576",
            "gateway.azureTokenMaxAnswerBytes=4096",
        ),
    ).env()
    assert env["GRAPH_MAX_RETRY_AFTER"]["value"] == "30s"
    assert env["GRAPH_MAX_ANSWER_BYTES"]["value"] == "1048576"
    assert env["AZURE_TOKEN_MAX_ANSWER_BYTES"]["value"] == "4096"


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(("client-secret.yaml",), ("terminationGracePeriodSeconds=15",))
    assert "drainTimeout" in str(caught.value)
    # The default delay and drain (5s + 20s) need more than 25 seconds.
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(("client-secret.yaml",), ("terminationGracePeriodSeconds=25",))
    assert "shutdownDelay (5s) plus gateway.drainTimeout (20s), 25s in all" in str(caught.value)


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


@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if auth_mode(scenario_values(s)) != "workloadIdentity"]
)
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
    "budget-redis": (("budget-redis.yaml",), ()),
    "budget-redis-url": (
        ("existing-secret.yaml",),
        ("networkPolicy.enabled=true", "budget.redis.url=redis://redis.redis.svc:6379"),
    ),
    "tracing": (("tracing.yaml",), ()),
    "tracing-http-and-redis": (("tracing-http.yaml",), ()),
    "tracing-off": (
        ("tracing.yaml",),
        ("tracing.otlpEndpoint=",),
    ),
}


def collector_port(endpoint: str) -> int:
    """The TCP port an OTLP exporter connects to for an endpoint URL: its own, or its scheme's."""
    url = urllib.parse.urlsplit(endpoint)
    return url.port or {"http": 80, "https": 443}[url.scheme]


@pytest.mark.parametrize("case", list(NETWORK_POLICY_RENDERS))
def test_network_policy_egress_only_dns_https_redis_and_collector(case: str) -> None:
    files, sets = NETWORK_POLICY_RENDERS[case]
    rendered = render(files, sets)
    policy = rendered.one("NetworkPolicy")
    assert {"Ingress", "Egress"} <= set(policy["spec"]["policyTypes"])
    merged = chart().merge_values(user_values(files, sets))
    allowed = {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    # And the Redis the pods share Intune's budget through, when there is one.
    redis = merged["budget"]["redis"]
    if redis["url"] or redis["existingSecret"]["name"]:
        allowed.add((merged["networkPolicy"]["redisPort"], "TCP"))
    # And the OpenTelemetry collector, when traces are exported.
    if merged["tracing"]["otlpEndpoint"]:
        allowed.add((collector_port(merged["tracing"]["otlpEndpoint"]), "TCP"))
    seen = set()
    for rule in policy["spec"].get("egress") or []:
        assert rule.get("ports"), "an egress rule without ports allows every port"
        for port in rule["ports"]:
            assert "endPort" not in port
            seen.add((port.get("port"), port.get("protocol", "TCP")))
    assert seen == allowed, seen
    ports = rendered.container_ports()
    values = merged["networkPolicy"]["ingressFrom"]
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
    for kind in (
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
    ):  # fmt: skip
        assert not rendered.has(kind), kind
    assert not dashboard_configmaps(rendered)


def test_everything_on() -> None:
    rendered = render_scenario("everything-on")
    values = scenario_values("everything-on")
    for kind in (
        "Deployment", "Service", "ServiceAccount", "ConfigMap",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
        "PrometheusRule",
    ):  # fmt: skip
        assert rendered.has(kind), kind
    assert dashboard_configmaps(rendered)
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
# The gRPC port's transport (TLS, mTLS, explicit plaintext) and caller policy
# ---------------------------------------------------------------------------

EXAMPLE_POLICY_TEXT = EXAMPLE_POLICY.read_text()
CLOSED_HEALTH_POLICY = EXAMPLE_POLICY_TEXT.replace("health = true", "health = false")
assert CLOSED_HEALTH_POLICY != EXAMPLE_POLICY_TEXT
# An inline policy whose text a careless rendering would change: leading
# indentation, tabs, trailing blanks, quotes, backslashes, non-ASCII, and no
# final newline.
AWKWARD_POLICY = (
    '  # indented "first" line \\ with a backslash, café\n'
    "\t[public]   \n"
    "health = true\t\n"
    "\n\n"
    "[[callers]]\n"
    "name = 'dashboard: \"quoted\"'\n"
    'identities = ["dns:dashboard.monitoring.svc"]\n'
    'rpcs = ["ListSecurityConfigurationTasks"]'
)
assert tomllib.loads(AWKWARD_POLICY)["public"]["health"] is True


def with_values(files: tuple[str, ...], override: dict[str, Any]) -> dict[str, Any]:
    return merge(user_values(files), override)


# Intune's budget shared through Redis (see the section on the budget below).
REDIS_ENV = ("GRAPH_BUDGET_REDIS_URL", "GRAPH_BUDGET_REDIS_PASSWORD_FILE", "GRAPH_BUDGET_REDIS_TIMEOUT")
REDIS_URL = "redis://redis-master.redis.svc.cluster.local:6379"
# What the chart must refuse to put in a ConfigMap: URLs that carry a password.
PASSWORD = "TEST-ONLY-redis-password-5b1f"


# Renders beyond the value files' scenarios, as user values.
MORE_RENDERS: dict[str, dict[str, Any]] = {
    "mtls-configmap-ca": with_values(
        ("mtls.yaml",),
        {
            "tls": {
                "clientCa": {"existingSecret": "", "existingConfigMap": "callers-ca-bundle"},
                "clientAuth": "required",
            }
        },
    ),
    "plaintext-public-health": with_values(
        ("existing-secret.yaml",),
        {"policy": {"allowUnauthenticated": False, "inline": EXAMPLE_POLICY_TEXT}},
    ),
    "plaintext-closed-health": with_values(
        ("existing-secret.yaml",),
        {"policy": {"allowUnauthenticated": False, "inline": CLOSED_HEALTH_POLICY}},
    ),
    "plaintext-public-not-a-table": with_values(
        ("existing-secret.yaml",),
        {"policy": {"allowUnauthenticated": False, "inline": "public = true\n"}},
    ),
    "plaintext-existing-policy": with_values(
        ("existing-secret.yaml",),
        {"policy": {"allowUnauthenticated": False, "existingConfigMap": "graph-gateway-policy"}},
    ),
    "awkward-inline-policy": with_values(
        ("existing-secret.yaml",), {"policy": {"allowUnauthenticated": False, "inline": AWKWARD_POLICY}}
    ),
    "demo-tls": with_values(("demo.yaml",), {"tls": {"enabled": True, "existingSecret": "demo-tls"}}),
    "demo-no-policy": with_values(("demo.yaml",), {"policy": {"allowUnauthenticated": False}}),
    # Intune's budget: Redis from values, a password alone from a Secret, off, a fractional share.
    "budget-redis-url": with_values(
        ("existing-secret.yaml",),
        {"budget": {"redis": {"url": REDIS_URL}}, "networkPolicy": {"enabled": True}},
    ),
    "budget-redis-url-secret-password": with_values(
        ("existing-secret.yaml",),
        {
            "budget": {
                "redis": {
                    "url": "rediss://gateway@ggg-redis.redis.cache.windows.net:6380",
                    "existingSecret": {"name": "ggg-redis", "urlKey": "", "passwordKey": "access-key"},
                }
            }
        },
    ),
    "budget-off": with_values(("existing-secret.yaml",), {"budget": {"enabled": False}}),
    "budget-local-share-fraction": with_values(
        ("existing-secret.yaml",), {"budget": {"localShare": 33.3}, "replicaCount": 3}
    ),
    # Trace export: an endpoint without a port (its scheme's), over IPv6, with every
    # sampler of its own; and tracing's other values set while it is off.
    "tracing-https-no-port": with_values(
        ("existing-secret.yaml",),
        {
            "tracing": {"otlpEndpoint": "https://otlp.example.com", "protocol": "http/protobuf"},
            "networkPolicy": {"enabled": True},
        },
    ),
    "tracing-http-no-port": with_values(
        ("existing-secret.yaml",),
        {
            "tracing": {"otlpEndpoint": "http://otel-collector.monitoring"},
            "networkPolicy": {"enabled": True},
        },
    ),
    "tracing-ipv6": with_values(
        ("demo.yaml",),
        {
            "tracing": {
                "otlpEndpoint": "http://[fd00::10]:14317",
                "sampler": "traceidratio",
                "samplerArg": "0",
            },
            "networkPolicy": {"enabled": True},
        },
    ),
    "tracing-off-but-set": with_values(
        ("existing-secret.yaml",),
        {
            "tracing": {
                "otlpEndpoint": "",
                "protocol": "http/protobuf",
                "sampler": "always_on",
                "serviceName": "unused",
                "resourceAttributes": {"team": "platform"},
                "recordFullUrl": True,
            },
            "networkPolicy": {"enabled": True},
        },
    ),
}
ALL_RENDERS: dict[str, dict[str, Any]] = {
    **{name: user_values(*scenario) for name, scenario in SCENARIOS.items()},
    **MORE_RENDERS,
}


@functools.cache
def render_case(name: str) -> Rendered:
    return render_values(ALL_RENDERS[name])


def case_values(name: str) -> dict[str, Any]:
    return chart().merge_values(ALL_RENDERS[name])


def client_ca_source(tls: dict[str, Any]) -> tuple[str, str, str] | None:
    ca = tls["clientCa"]
    if ca["existingSecret"]:
        return "Secret", ca["existingSecret"], ca["key"]
    if ca["existingConfigMap"]:
        return "ConfigMap", ca["existingConfigMap"], ca["key"]
    return None


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", list(MORE_RENDERS))
def test_more_renders_validate_strictly(case: str, version: str) -> None:
    chart().validate_schema(ALL_RENDERS[case])
    rendered = render_case(case)
    errors = [e for obj in rendered.objects for e in schema_errors(obj, version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_no_mount_uses_subpath(case: str) -> None:
    """A subPath mount never sees a renewed Secret or an edited ConfigMap."""
    spec = render_case(case).pod_spec
    for container in spec["containers"] + spec.get("initContainers", []):
        for mount in container.get("volumeMounts", []):
            assert not mount.get("subPath") and not mount.get("subPathExpr"), mount


@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_grpc_transport_environment(case: str) -> None:
    rendered = render_case(case)
    tls = case_values(case)["tls"]
    env = rendered.env()
    tls_env = {name for name in env if name.startswith("GATEWAY_TLS_")}
    volumes = {v["name"]: v for v in rendered.pod_spec.get("volumes", [])}
    if not tls["enabled"]:
        # No certificate: plaintext must be chosen explicitly, or the gateway refuses to start.
        assert env["GATEWAY_PLAINTEXT"]["value"] == "true"
        assert not tls_env, tls_env
        assert not {"tls", "client-ca"} & set(volumes)
        return
    assert "GATEWAY_PLAINTEXT" not in env
    secret = tls["existingSecret"]
    assert rendered.mounted_file(env["GATEWAY_TLS_CERT_FILE"]["value"]) == ("Secret", secret, "tls.crt")
    assert rendered.mounted_file(env["GATEWAY_TLS_KEY_FILE"]["value"]) == ("Secret", secret, "tls.key")
    assert env["GATEWAY_TLS_RELOAD_INTERVAL"]["value"] == tls["reloadInterval"]
    parse_duration(env["GATEWAY_TLS_RELOAD_INTERVAL"]["value"])
    # The whole Secret, so that both files change together when it is renewed.
    assert "items" not in volumes["tls"]["secret"]
    ca = client_ca_source(tls)
    if ca:
        assert rendered.mounted_file(env["GATEWAY_TLS_CLIENT_CA_FILE"]["value"]) == ca
        assert env["GATEWAY_TLS_CLIENT_AUTH"]["value"] == tls["clientAuth"]
    else:
        assert tls_env == {
            "GATEWAY_TLS_CERT_FILE",
            "GATEWAY_TLS_KEY_FILE",
            "GATEWAY_TLS_RELOAD_INTERVAL",
        }
        assert "client-ca" not in volumes


@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_caller_policy_environment(case: str) -> None:
    rendered = render_case(case)
    values = case_values(case)
    policy = values["policy"]
    env = rendered.env()
    chart_policy_maps = [
        cm for cm in rendered.all("ConfigMap") if cm["metadata"]["name"].endswith("-policy")
    ]
    if policy["inline"] or policy["existingConfigMap"]:
        assert "GATEWAY_ALLOW_UNAUTHENTICATED" not in env
        kind, name, key = rendered.mounted_file(env["GATEWAY_POLICY_FILE"]["value"])
        assert (kind, key) == ("ConfigMap", policy["key"])
        if policy["existingConfigMap"]:
            assert name == policy["existingConfigMap"]
            assert not chart_policy_maps, "the chart must not render a policy of its own"
        else:
            policy_map = rendered.named("ConfigMap", name)
            assert policy_map["data"] == {policy["key"]: policy["inline"]}
    elif policy["allowUnauthenticated"]:
        assert env["GATEWAY_ALLOW_UNAUTHENTICATED"]["value"] == "true"
        assert "GATEWAY_POLICY_FILE" not in env and not chart_policy_maps
    else:
        # Only the emulator may run with neither (the schema refuses it against Graph).
        assert values["emulator"]["enabled"] is True
        assert "GATEWAY_ALLOW_UNAUTHENTICATED" not in env and "GATEWAY_POLICY_FILE" not in env


@pytest.mark.parametrize(
    ("case", "inline"),
    [
        ("tls-policy", EXAMPLE_POLICY_TEXT),
        (
            "mesh-policy",
            helm.values_from_yaml((VALUES_DIR / "mesh-policy.yaml").read_text())["policy"]["inline"],
        ),
        ("awkward-inline-policy", AWKWARD_POLICY),
    ],
)
def test_inline_policy_lands_verbatim(case: str, inline: str) -> None:
    """The policy ConfigMap holds exactly the inline TOML, byte for byte."""
    rendered = render_case(case)
    key = case_values(case)["policy"]["key"]
    kind, name, mounted_key = rendered.mounted_file(rendered.env()["GATEWAY_POLICY_FILE"]["value"])
    assert (kind, mounted_key) == ("ConfigMap", key)
    assert rendered.named("ConfigMap", name)["data"][key] == inline


@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_chart_mounts_are_read_only(case: str) -> None:
    rendered = render_case(case)
    ours = {"client-secret", "certificate", "tls", "client-ca", "policy", "budget-redis"}
    for mount in rendered.container.get("volumeMounts", []):
        if mount["name"] in ours:
            assert mount.get("readOnly") is True, mount


# Which readiness probe each render must have: the native gRPC one only where
# the kubelet (plaintext, no identity) can be answered.
READINESS_OVER_GRPC = {
    "default": True,
    "demo": True,
    "mesh-policy": True,
    "plaintext-public-health": True,
    "tls-policy": False,
    "mtls": False,
    "mtls-configmap-ca": False,
    "demo-tls": False,
    "plaintext-closed-health": False,
    "plaintext-public-not-a-table": False,
    "plaintext-existing-policy": False,
}


@pytest.mark.parametrize("case", list(READINESS_OVER_GRPC))
def test_readiness_probe_switch(case: str) -> None:
    rendered = render_case(case)
    assert_readiness(rendered, READINESS_OVER_GRPC[case])
    assert kubelet_can_ask_grpc_health(case_values(case)) is READINESS_OVER_GRPC[case]
    # Liveness and startup stay on the admin /healthz whatever the gRPC port speaks.
    for probe in ("livenessProbe", "startupProbe"):
        assert rendered.container[probe]["httpGet"]["path"] == "/healthz"


def schema_refusal(
    files: tuple[str, ...], sets: tuple[str, ...], set_files: tuple[str, ...] = ()
) -> str:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_uncached(files, sets, set_files)
    message = str(caught.value)
    assert "schema" in message, message
    return message


POLICY_FILE = (f"policy.inline={EXAMPLE_POLICY}",)


@pytest.mark.parametrize(
    ("files", "sets", "set_files", "offending"),
    [
        (("existing-secret.yaml",), ("tls.enabled=true",), (), "/tls/existingSecret"),
        (("existing-secret.yaml",), ("tls.existingSecret=gateway-tls",), (), "/tls/existingSecret"),
        (
            ("existing-secret.yaml",),
            ("tls.clientCa.existingSecret=callers-ca",),
            (),
            "/tls/clientCa/existingSecret",
        ),
        (
            ("existing-secret.yaml",),
            ("tls.clientCa.existingConfigMap=callers-ca",),
            (),
            "/tls/clientCa/existingConfigMap",
        ),
        (
            ("mtls.yaml",),
            ("tls.clientCa.existingConfigMap=callers-ca",),
            (),
            "/tls/clientCa/existingConfigMap",
        ),
        (("mtls.yaml",), ("tls.clientAuth=maybe",), (), "/tls/clientAuth"),
        (
            ("tls-policy.yaml",),
            ("tls.clientAuth=optional",),
            POLICY_FILE,
            "'/tls/clientAuth': value must be 'required'",
        ),
        (("mtls.yaml",), ("tls.reloadInterval=soon",), (), "/tls/reloadInterval"),
        (("mtls.yaml",), ("tls.enabled=yes",), (), "/tls/enabled"),
        (("mtls.yaml",), ("tls.existingSecret=Gateway_TLS",), (), "/tls/existingSecret"),
        (("mtls.yaml",), ("tls.clientCa.key=../ca.crt",), (), "/tls/clientCa/key"),
        (("mtls.yaml",), ("tls.certificate=gateway-tls",), (), "additional properties 'certificate'"),
        (("existing-secret.yaml",), ("tls=null",), (), "missing property 'tls'"),
        (
            ("existing-secret.yaml",),
            (),
            POLICY_FILE,
            "'/policy/allowUnauthenticated': value must be false",
        ),
        (
            ("existing-secret.yaml",),
            ("policy.existingConfigMap=gateway-policy",),
            (),
            "'/policy/allowUnauthenticated': value must be false",
        ),
        (
            ("tls-policy.yaml",),
            ("policy.existingConfigMap=gateway-policy",),
            POLICY_FILE,
            "/policy/existingConfigMap",
        ),
        (
            ("existing-secret.yaml",),
            ("policy.allowUnauthenticated=yes",),
            (),
            "/policy/allowUnauthenticated",
        ),
        (("mtls.yaml",), ("policy.key=a/b.toml",), (), "/policy/key"),
        (("mtls.yaml",), ("policy.file=policy.toml",), (), "additional properties 'file'"),
        (("existing-secret.yaml",), ("policy=null",), (), "missing property 'policy'"),
        (("existing-secret.yaml",), ("gateway.maxConnections=0",), (), "/gateway/maxConnections"),
        (
            ("existing-secret.yaml",),
            ("gateway.maxConcurrentStreams=0",),
            (),
            "/gateway/maxConcurrentStreams",
        ),
    ],
    ids=[
        "tls-without-secret",
        "tls-secret-without-tls",
        "client-ca-secret-without-tls",
        "client-ca-configmap-without-tls",
        "client-ca-from-both",
        "unknown-client-auth",
        "client-auth-without-client-ca",
        "bad-reload-interval",
        "tls-enabled-not-a-boolean",
        "bad-secret-name",
        "bad-client-ca-key",
        "unknown-tls-key",
        "tls-dropped",
        "inline-policy-and-allow-unauthenticated",
        "policy-configmap-and-allow-unauthenticated",
        "policy-from-both",
        "allow-unauthenticated-not-a-boolean",
        "bad-policy-key",
        "unknown-policy-key",
        "policy-dropped",
        "no-connections",
        "no-streams",
    ],
)
def test_schema_refuses_bad_transport_and_policy(
    files: tuple[str, ...], sets: tuple[str, ...], set_files: tuple[str, ...], offending: str
) -> None:
    message = schema_refusal(files, sets, set_files)
    assert offending in message, message


# What the refusal of an install without a caller choice must name: both ways out.
CALLER_CHOICES = ("policy.inline", "policy.existingConfigMap", "policy.allowUnauthenticated=true")


def no_caller_choice_refusal(files: tuple[str, ...], sets: tuple[str, ...]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(files, sets)
    message = str(caught.value)
    assert "no caller policy" in message, message
    for way_out in CALLER_CHOICES:
        assert way_out in message, f"{way_out!r} not named in: {message}"
    return message


@pytest.mark.parametrize(
    ("files", "sets"),
    [
        ((), (f"graph.auth.clientSecret={DEFAULT_SECRET}",)),
        (("existing-secret.yaml",), ("policy.allowUnauthenticated=false",)),
        (("workload-identity.yaml",), ("policy.allowUnauthenticated=false",)),
        (("mtls.yaml",), ("policy.existingConfigMap=",)),
    ],
    ids=["chart-defaults", "existing-secret", "workload-identity", "mtls-policy-removed"],
)
def test_graph_without_a_caller_choice_is_refused(files: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """The chart's default is closed: no policy and no opt-in renders nothing, naming both ways out."""
    no_caller_choice_refusal(files, sets)


def test_the_open_door_is_an_explicit_choice() -> None:
    assert chart().merge_values({})["policy"]["allowUnauthenticated"] is False
    env = render((), DEFAULT_SETS).env()
    assert env["GATEWAY_ALLOW_UNAUTHENTICATED"]["value"] == "true"


def test_emulator_may_serve_without_policy_but_graph_may_not() -> None:
    """The demo needs no caller choice (like `serve --emulator`); Graph mode does."""
    closed = ("policy.allowUnauthenticated=false",)
    env = render_uncached(("demo.yaml",), closed).env()
    assert "GATEWAY_ALLOW_UNAUTHENTICATED" not in env and "GATEWAY_POLICY_FILE" not in env
    no_caller_choice_refusal(
        ("demo.yaml",), closed + ("emulator.enabled=false", "graph.auth.clientSecret=x")
    )


def test_invalid_inline_policy_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "policy.toml"
    broken.write_text("[public\nhealth = true\n")
    with pytest.raises(helm.HelmError) as caught:
        render_uncached(("tls-policy.yaml",), (), (f"policy.inline={broken}",))
    assert "policy.inline is not valid TOML" in str(caught.value)


def test_policy_change_rolls_the_pods_and_tls_renewal_does_not() -> None:
    base_values = user_values(*SCENARIOS["tls-policy"])
    base = checksums(render_values(base_values))
    # The chart never reads the TLS Secret (no lookup), so nothing in the pod
    # template can follow its content: a renewal reaches the pods through the
    # mounted directory and the gateway's reload, without a roll-out.
    assert set(base) == {"checksum/config", "checksum/policy"}, base
    for template in (CHART_DIR / "templates").iterdir():
        assert not re.search(r"\blookup\b", template.read_text()), template.name
    more_callers = (
        EXAMPLE_POLICY_TEXT
        + '\n[[callers]]\nname = "auditor"\nidentities = ["dns:auditor.audit.svc"]\nrpcs = ["ListSecurityConfigurationTasks"]\n'
    )
    changed = checksums(render_values(merge(base_values, {"policy": {"inline": more_callers}})))
    assert changed["checksum/policy"] != base["checksum/policy"], (
        "a policy change does not roll the pods"
    )
    assert changed["checksum/config"] == base["checksum/config"]
    reload_changed = checksums(render_values(merge(base_values, {"tls": {"reloadInterval": "10s"}})))
    assert reload_changed["checksum/config"] != base["checksum/config"], (
        "a TLS setting change does not roll the pods"
    )
    # A policy in a ConfigMap of the operator's is invisible to the chart: no checksum claims to follow it.
    assert "checksum/policy" not in checksums(render_scenario("mtls"))
    assert "rollout restart" in (render_scenario("mtls").notes or "")


# ---------------------------------------------------------------------------
# Intune's budget: pacing, the replica count, Redis the pods share it through
# ---------------------------------------------------------------------------


def budget_redis(values: dict[str, Any]) -> str:
    """Where the Redis URL comes from for these (merged) values: values, secret or none."""
    redis = values["budget"]["redis"]
    if redis["url"]:
        return "values"
    return "secret" if redis["existingSecret"]["name"] else "none"


def expected_replicas(values: dict[str, Any]) -> str:
    """GATEWAY_REPLICAS: the most pods that can run at once (at least 1)."""
    if values["autoscaling"]["enabled"]:
        return str(values["autoscaling"]["maxReplicas"])
    return str(max(1, values["replicaCount"]))




@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_budget_environment(case: str) -> None:
    """Every render paces as its values say, and GATEWAY_REPLICAS is the most pods that can run."""
    rendered = render_case(case)
    values = case_values(case)
    budget = values["budget"]
    env = rendered.env()
    assert env["GRAPH_BUDGET"]["value"] == ("on" if budget["enabled"] else "off")
    assert env["GRAPH_WRITE_BUDGET"]["value"] == budget["writes"]
    assert env["GRAPH_REQUEST_BUDGET"]["value"] == budget["requests"]
    assert env["GATEWAY_REPLICAS"]["value"] == expected_replicas(values)
    if budget.get("localShare") is None:
        assert "GRAPH_BUDGET_LOCAL_SHARE" not in env
    else:
        assert float(env["GRAPH_BUDGET_LOCAL_SHARE"]["value"]) == budget["localShare"]
    for name in ("GRAPH_BUDGET", "GRAPH_WRITE_BUDGET", "GRAPH_REQUEST_BUDGET", "GATEWAY_REPLICAS"):
        assert env[name]["from"] == "configMap", name
    volumes = {v["name"] for v in rendered.pod_spec.get("volumes", [])}
    source = budget_redis(values)
    if source == "none":
        assert not set(REDIS_ENV) & set(env), sorted(set(REDIS_ENV) & set(env))
        assert "budget-redis" not in volumes
        return
    assert env["GRAPH_BUDGET_REDIS_TIMEOUT"]["value"] == budget["redis"]["timeout"]
    url = env["GRAPH_BUDGET_REDIS_URL"]
    secret = budget["redis"]["existingSecret"]
    if source == "values":
        assert url == {"name": url["name"], "value": budget["redis"]["url"], "from": "configMap"}
    else:
        # A URL may hold a password: only a reference to the Secret, never its text.
        assert "value" not in url
        assert url["valueFrom"] == {"secretKeyRef": {"name": secret["name"], "key": secret["urlKey"]}}
    if secret["passwordKey"]:
        path = env["GRAPH_BUDGET_REDIS_PASSWORD_FILE"]["value"]
        assert rendered.mounted_secret_file(path) == (secret["name"], secret["passwordKey"])
    else:
        assert "GRAPH_BUDGET_REDIS_PASSWORD_FILE" not in env and "budget-redis" not in volumes


def test_default_render_paces_alone_on_the_whole_budget() -> None:
    env = render_scenario("default").env()
    assert (env["GRAPH_BUDGET"]["value"], env["GRAPH_WRITE_BUDGET"]["value"]) == ("on", "100/20s")
    assert env["GRAPH_REQUEST_BUDGET"]["value"] == "1000/20s"
    assert env["GATEWAY_REPLICAS"]["value"] == "1"
    assert not [name for name in env if name.startswith("GRAPH_BUDGET_")]
    for name in ("GRAPH_BUDGET", "GRAPH_BUDGET_REDIS_URL", "GRAPH_BUDGET_REDIS_PASSWORD_FILE"):
        assert name in gateway_env_names(), name


@pytest.mark.parametrize(
    ("sets", "replicas"),
    [
        (("replicaCount=3",), "3"),
        (("replicaCount=0",), "1"),
        (("replicaCount=2", "autoscaling.enabled=true", "autoscaling.maxReplicas=9"), "9"),
        (("replicaCount=5", "autoscaling.enabled=true"), "10"),
    ],
    ids=["replica-count", "scaled-to-zero", "hpa-maximum", "hpa-default-maximum"],
)
def test_gateway_replicas_follows_the_replica_count_or_the_hpa(sets: tuple[str, ...], replicas: str) -> None:
    rendered = render_uncached(("existing-secret.yaml",), sets)
    assert rendered.env()["GATEWAY_REPLICAS"]["value"] == replicas
    if rendered.has("HorizontalPodAutoscaler"):
        assert str(rendered.one("HorizontalPodAutoscaler")["spec"]["maxReplicas"]) == replicas
    else:
        assert max(1, rendered.deployment["spec"]["replicas"]) == int(replicas)


def test_a_new_replica_count_rolls_the_pods() -> None:
    """Each pod reads GATEWAY_REPLICAS at start: a new count must reach the running pods."""
    base = checksums(render_uncached(("existing-secret.yaml",), ("replicaCount=2",)))
    more = checksums(render_uncached(("existing-secret.yaml",), ("replicaCount=3",)))
    assert more["checksum/config"] != base["checksum/config"]


def test_redis_url_without_a_password_goes_in_the_configmap() -> None:
    rendered = render_case("budget-redis-url")
    (config,) = [cm for cm in rendered.all("ConfigMap") if "GATEWAY_GRPC_ADDR" in (cm.get("data") or {})]
    assert config["data"]["GRAPH_BUDGET_REDIS_URL"] == REDIS_URL
    assert config["data"]["GRAPH_BUDGET_REDIS_TIMEOUT"] == "250ms"
    assert "GRAPH_BUDGET_REDIS_PASSWORD_FILE" not in config["data"]
    assert "GRAPH_BUDGET_REDIS_URL" not in {e["name"] for e in rendered.container.get("env", [])}


def test_redis_from_an_existing_secret() -> None:
    """The URL from the Secret as a reference, the password as a read-only mounted file."""
    rendered = render_scenario("budget-redis")
    env = rendered.env()
    url = env["GRAPH_BUDGET_REDIS_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "graph-gateway-redis", "key": "url"}
    path = env["GRAPH_BUDGET_REDIS_PASSWORD_FILE"]["value"]
    # mounted_file holds the mount to read-only and a whole directory (no subPath).
    assert rendered.mounted_secret_file(path) == ("graph-gateway-redis", "access-key")
    assert env["GRAPH_BUDGET_REDIS_TIMEOUT"]["value"] == "100ms"
    assert (env["GATEWAY_REPLICAS"]["value"], env["GRAPH_BUDGET_LOCAL_SHARE"]["value"]) == ("3", "25")
    for cm in rendered.all("ConfigMap"):
        assert "GRAPH_BUDGET_REDIS_URL" not in (cm.get("data") or {})
    assert not rendered.has("Secret"), "the chart must not create the Redis Secret"


def test_redis_password_alone_from_a_secret() -> None:
    rendered = render_case("budget-redis-url-secret-password")
    env = rendered.env()
    assert env["GRAPH_BUDGET_REDIS_URL"]["from"] == "configMap"
    assert env["GRAPH_BUDGET_REDIS_URL"]["value"].startswith("rediss://gateway@")
    path = env["GRAPH_BUDGET_REDIS_PASSWORD_FILE"]["value"]
    assert rendered.mounted_secret_file(path) == ("ggg-redis", "access-key")


def test_local_share_keeps_its_fraction() -> None:
    env = render_case("budget-local-share-fraction").env()
    assert env["GRAPH_BUDGET_LOCAL_SHARE"]["value"] == "33.3"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@redis:6379",
        f"rediss://gateway:{PASSWORD}@ggg-redis.redis.cache.windows.net:6380/0",
        f"redis://:{PASSWORD}@with@at@redis:6379",
        f"redis://default:{PASSWORD}@redis",
    ],
    ids=["password-only", "user-and-password", "unescaped-at-signs", "no-port"],
)
def test_a_redis_url_with_a_password_is_refused(url: str) -> None:
    """A password never lands in a ConfigMap: the render fails, pointing at existingSecret."""
    with pytest.raises(helm.HelmError) as caught:
        render_values(with_values(("existing-secret.yaml",), {"budget": {"redis": {"url": url}}}))
    message = str(caught.value)
    assert "budget.redis.url holds a password" in message, message
    assert "budget.redis.existingSecret.name" in message, message
    assert PASSWORD not in message and url not in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis:6379",
        "rediss://ggg-redis.redis.cache.windows.net:6380",
        "rediss://gateway@ggg-redis.redis.cache.windows.net:6380/2",
        "redis://[fd00::1]:6379/0?protocol=resp3",
    ],
)
def test_a_redis_url_without_a_password_is_accepted(url: str) -> None:
    values = with_values(("existing-secret.yaml",), {"budget": {"redis": {"url": url}}})
    chart().validate_schema(values)
    assert render_values(values).env()["GRAPH_BUDGET_REDIS_URL"]["value"] == url


@pytest.mark.parametrize(
    ("redis", "wanted"),
    [
        ({"existingSecret": {"name": "ggg-redis", "urlKey": ""}}, "no Redis URL is"),
        (
            {"existingSecret": {"name": "ggg-redis", "passwordKey": "password"}, "url": REDIS_URL},
            "the Redis URL is given twice",
        ),
        ({"existingSecret": {"passwordKey": "password"}, "url": REDIS_URL}, "passwordKey needs"),
    ],
    ids=["secret-without-a-url", "url-twice", "password-without-a-secret"],
)
def test_contradictory_redis_settings_are_refused(redis: dict[str, Any], wanted: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render_values(with_values(("existing-secret.yaml",), {"budget": {"redis": redis}}))
    assert wanted in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("override", "offending"),
    [
        ({"budget": {"writes": "0/20s"}}, "/budget/writes"),
        ({"budget": {"writes": "1000001/20s"}}, "/budget/writes"),
        ({"budget": {"writes": "100"}}, "/budget/writes"),
        ({"budget": {"requests": "1000/20 s"}}, "/budget/requests"),
        ({"budget": {"requests": 1000}}, "/budget/requests"),
        ({"budget": {"localShare": 0.05}}, "/budget/localShare"),
        ({"budget": {"localShare": 100.5}}, "/budget/localShare"),
        ({"budget": {"localShare": "50"}}, "/budget/localShare"),
        ({"budget": {"enabled": "yes"}}, "/budget/enabled"),
        ({"budget": {"redis": {"timeout": "soon"}}}, "/budget/redis/timeout"),
        ({"budget": {"redis": {"url": "http://redis:6379"}}}, "/budget/redis/url"),
        ({"budget": {"redis": {"url": "redis://redis :6379"}}}, "/budget/redis/url"),
        ({"budget": {"redis": {"password": PASSWORD}}}, "additional properties 'password'"),
        (
            {"budget": {"redis": {"existingSecret": {"name": "Redis_Secret"}}}},
            "/budget/redis/existingSecret/name",
        ),
        (
            {"budget": {"redis": {"existingSecret": {"passwordKey": "a/b"}}}},
            "/budget/redis/existingSecret/passwordKey",
        ),
        ({"budget": {"shared": True}}, "additional properties 'shared'"),
        ({"replicaCount": 1001}, "/replicaCount"),
        ({"autoscaling": {"maxReplicas": 1001}}, "/autoscaling/maxReplicas"),
        ({"networkPolicy": {"redisPort": 0}}, "/networkPolicy/redisPort"),
    ],
    ids=[
        "no-writes",
        "too-many-writes",
        "writes-without-a-window",
        "requests-with-a-space",
        "requests-not-a-string",
        "local-share-too-small",
        "local-share-too-large",
        "local-share-not-a-number",
        "enabled-not-a-boolean",
        "timeout-not-a-duration",
        "url-not-redis",
        "url-with-a-space",
        "password-as-a-value",
        "bad-secret-name",
        "bad-password-key",
        "unknown-budget-key",
        "too-many-replicas",
        "too-many-hpa-replicas",
        "no-redis-port",
    ],
)
def test_schema_refuses_bad_budget_values(override: dict[str, Any], offending: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_values(with_values(("existing-secret.yaml",), override))
    message = str(caught.value)
    assert "schema" in message and offending in message, message


def readme_range(env: str) -> tuple[str, str]:
    """(min, max) of a setting in README.md's table of ranges.

    tests/readme.rs holds that table to src/settings.rs.
    """
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[0] == f"`{env}`":
            low, high = re.fullmatch(r"`([^`]+)` to `([^`]+)`", cells[2]).groups()
            return low, high
    raise AssertionError(f"{env} is not in README.md's table of ranges")


@pytest.mark.parametrize(
    ("env", "key"), [("GRAPH_WRITE_BUDGET", "writes"), ("GRAPH_REQUEST_BUDGET", "requests")]
)
def test_schema_bounds_a_budget_count_as_the_gateway_does(env: str, key: str) -> None:
    """The schema takes exactly the counts the gateway takes; the window is bounded at start."""
    low, high = readme_range(env)
    (least, window), (most, _) = low.split("/"), high.split("/")
    def values(count: int) -> dict[str, Any]:
        return with_values(("existing-secret.yaml",), {"budget": {key: f"{count}/{window}"}})

    for count in (int(least), int(most)):
        chart().validate_schema(values(count))
    for count in (int(least) - 1, int(most) + 1):
        with pytest.raises(helm.HelmValuesError):
            chart().validate_schema(values(count))


@pytest.mark.parametrize(
    ("case", "warned"),
    [
        ("default", False),
        ("everything-on", True),
        ("budget-local-share-fraction", True),
        ("budget-redis", False),
        ("budget-off", False),
    ],
)
def test_notes_say_how_the_budget_is_shared(case: str, warned: bool) -> None:
    notes = render_case(case).notes or ""
    values = case_values(case)
    assert ("no Redis (budget.redis)" in notes) is warned, notes
    if not values["budget"]["enabled"]:
        assert "Intune budget: off" in notes
    elif budget_redis(values) != "none":
        assert f"shared by up to {expected_replicas(values)} pod(s) through Redis" in notes
    else:
        assert "each pod paces alone" in notes
    assert PASSWORD not in notes

# ---------------------------------------------------------------------------
# Trace export over OTLP (tracing.*)
# ---------------------------------------------------------------------------

OTEL_ENV = frozenset(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    }
)
# The gateway's own trace setting (tracing.recordFullUrl), passed with them.
TRACE_URL_FULL = "GATEWAY_TRACE_URL_FULL"
# What the downward API gives the pod in these tests' stand-in for Kubernetes.
POD_FIELDS = {
    "metadata.name": "gw-graph-grpc-gateway-5d8f7-x2k9q",
    "metadata.namespace": NAMESPACE,
    "spec.nodeName": "aks-pool-0",
}
# The keys the chart sets in OTEL_RESOURCE_ATTRIBUTES, in order.
CHART_RESOURCE_KEYS = (
    "k8s.pod.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.deployment.name",
    "service.version",
)
TRACING_RENDERS = [name for name in ALL_RENDERS if case_values(name)["tracing"]["otlpEndpoint"]]
assert {"tracing", "tracing-http", "tracing-ipv6"} <= set(TRACING_RENDERS), TRACING_RENDERS


def variable_references(value: str) -> list[str]:
    """The names Kubernetes tries to expand in an env value: $(NAME), but not $$(NAME)."""
    names, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            i += 2
        elif value.startswith("$(", i) and ")" in value[i + 2 :]:
            end = value.index(")", i + 2)
            names.append(value[i + 2 : end])
            i = end + 1
        else:
            i += 1
    return names


def kubernetes_expand(value: str, defined: dict[str, str]) -> str:
    """An env value as the container sees it: $(NAME) of a variable defined before it
    replaced, $$ made $, anything else (an undefined $(NAME) too) left as written."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i + 2 :]:
            end = value.index(")", i + 2)
            name = value[i + 2 : end]
            out.append(defined.get(name, value[i : end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def container_environment(rendered: Rendered) -> dict[str, str]:
    """The gateway process's environment: the ConfigMap, then env in order, expanded."""
    defined = {k: v["value"] for k, v in rendered.env().items() if v.get("from") == "configMap"}
    for entry in rendered.container.get("env", []):
        if "value" in entry:
            defined[entry["name"]] = kubernetes_expand(entry["value"], defined)
        elif "fieldRef" in entry.get("valueFrom", {}):
            defined[entry["name"]] = POD_FIELDS[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return defined


def decode_resource_attributes(text: str) -> list[tuple[str, str]]:
    """OTEL_RESOURCE_ATTRIBUTES as OpenTelemetry reads it: key=value pairs split
    on ",", each on its first "=", keys and values percent-decoded."""
    pairs = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        assert sep, f"{item!r} is no key=value pair"
        decoded = (urllib.parse.unquote(key, errors="strict"), urllib.parse.unquote(value, errors="strict"))
        pairs.append(decoded)
    return pairs


@pytest.mark.parametrize("case", [name for name in ALL_RENDERS if name not in TRACING_RENDERS])
def test_no_trace_variables_without_an_endpoint(case: str) -> None:
    env = render_case(case).env()
    assert not [name for name in env if name.startswith("OTEL_")], sorted(env)
    assert TRACE_URL_FULL not in env, sorted(env)
    assert not set(DOWNWARD_API_ENV) & set(env), sorted(env)


@pytest.mark.parametrize("case", TRACING_RENDERS)
def test_trace_variables_pass_the_values_on(case: str) -> None:
    rendered = render_case(case)
    tracing = case_values(case)["tracing"]
    env = rendered.env()
    container = container_environment(rendered)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == {
        "name": "OTEL_EXPORTER_OTLP_ENDPOINT",
        "value": tracing["otlpEndpoint"],
    }
    assert container["OTEL_EXPORTER_OTLP_PROTOCOL"] == tracing["protocol"]
    assert container["OTEL_TRACES_SAMPLER"] == tracing["sampler"]
    assert container["OTEL_SERVICE_NAME"] == tracing["serviceName"]
    if tracing["sampler"].endswith("traceidratio"):
        assert float(container["OTEL_TRACES_SAMPLER_ARG"]) == float(tracing["samplerArg"])
    else:
        assert "OTEL_TRACES_SAMPLER_ARG" not in env, "the sampler takes no argument"
    # As the gateway's flag parser reads a boolean: exactly "true" or "false".
    assert env[TRACE_URL_FULL] == {
        "name": TRACE_URL_FULL,
        "value": "true" if tracing["recordFullUrl"] else "false",
    }
    for name, field in DOWNWARD_API_ENV.items():
        assert env[name] == {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}
    for name in (*OTEL_ENV, TRACE_URL_FULL, *DOWNWARD_API_ENV):
        assert env.get(name, {}).get("from") != "configMap", f"{name} must be in the container's env"


def test_trace_variables_of_the_grpc_file() -> None:
    env = render_scenario("tracing").env()
    assert {name: env[name].get("value") for name in OTEL_ENV} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_SERVICE_NAME": "intune-graph-gateway",
        "OTEL_RESOURCE_ATTRIBUTES": (
            "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME),"
            "k8s.deployment.name=gw-graph-grpc-gateway,service.version=0.1.0%2Bbuild.7,"
            "deployment.environment.name=production,note=100%25%20%24%28POD_NAME%29,"
            "team=platform%2C%20security%20%3D%20ops"
        ),
    }
    assert env[TRACE_URL_FULL]["value"] == "true"


def test_trace_variables_of_the_http_file() -> None:
    env = render_scenario("tracing-http").env()
    assert {name: env[name]["value"] for name in OTEL_ENV if name in env} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring.svc.cluster.local:4318/otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_SERVICE_NAME": "graph-grpc-gateway",
        "OTEL_RESOURCE_ATTRIBUTES": (
            "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME),"
            "k8s.deployment.name=gw-graph-grpc-gateway,service.version=0.1.0"
        ),
    }
    assert env[TRACE_URL_FULL]["value"] == "false", "off unless asked for"


@pytest.mark.parametrize("case", list(ALL_RENDERS))
def test_every_variable_reference_is_defined_before_it(case: str) -> None:
    """Kubernetes expands $(NAME) only from variables above it (or envFrom); any other stays literal."""
    rendered = render_case(case)
    defined = {k for k, v in rendered.env().items() if v.get("from") == "configMap"}
    for entry in rendered.container.get("env", []):
        for name in variable_references(entry.get("value", "")):
            assert name in defined, f"{entry['name']} names $({name}) before it is defined"
        defined.add(entry["name"])


@pytest.mark.parametrize("case", TRACING_RENDERS)
def test_the_pod_facts_come_before_the_resource_attributes(case: str) -> None:
    names = [e["name"] for e in render_case(case).container["env"]]
    attributes = names.index("OTEL_RESOURCE_ATTRIBUTES")
    for name in DOWNWARD_API_ENV:
        assert names.index(name) < attributes, names
        assert names.count(name) == 1, names


@pytest.mark.parametrize("case", TRACING_RENDERS)
def test_resource_attributes_reach_the_gateway_as_written(case: str) -> None:
    """Expanded by Kubernetes and decoded as OpenTelemetry does, each attribute is
    the pod's fact or the value as given, chart's keys first, then the user's sorted."""
    rendered = render_case(case)
    values = case_values(case)
    pairs = decode_resource_attributes(container_environment(rendered)["OTEL_RESOURCE_ATTRIBUTES"])
    user = values["tracing"]["resourceAttributes"]
    assert [key for key, _ in pairs] == [*CHART_RESOURCE_KEYS, *sorted(user)]
    assert dict(pairs) == {
        "k8s.pod.name": POD_FIELDS["metadata.name"],
        "k8s.namespace.name": NAMESPACE,
        "k8s.node.name": POD_FIELDS["spec.nodeName"],
        "k8s.deployment.name": rendered.deployment["metadata"]["name"],
        "service.version": rendered.container["image"].rsplit(":", 1)[1],
        **user,
    }


@pytest.mark.parametrize(
    "attributes",
    [
        {"deployment.environment.name": "staging"},
        {"z.last": "1", "a.first": "2", "m_mid-dle": "3"},
        {"awkward": 'a,b=c d%e$(POD_NAME)$$f+g"h;i\\j/k~l:m@n', "unicode": "café ✓"},
        {"empty": ""},
    ],
    ids=["one", "sorted", "awkward", "empty-value"],
)
def test_resource_attribute_values_are_percent_encoded(attributes: dict[str, str]) -> None:
    values = with_values(
        ("existing-secret.yaml",),
        {
            "tracing": {
                "otlpEndpoint": "http://otel-collector.monitoring:4317",
                "resourceAttributes": attributes,
            }
        },
    )
    rendered = render_values(values)
    raw = rendered.env()["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    user_part = raw.split(",")[len(CHART_RESOURCE_KEYS) :]
    # Only unreserved characters and escapes: nothing a reader of the list, or Kubernetes, takes apart.
    for item in user_part:
        key, _, value = item.partition("=")
        assert re.fullmatch(r"([A-Za-z0-9._~-]|%[0-9A-F]{2})*", value), item
    assert user_part == [f"{k}={urllib.parse.quote(v, safe='')}" for k, v in sorted(attributes.items())]
    pairs = decode_resource_attributes(container_environment(rendered)["OTEL_RESOURCE_ATTRIBUTES"])
    assert dict(pairs[len(CHART_RESOURCE_KEYS) :]) == attributes


def test_endpoint_and_service_name_are_not_expanded() -> None:
    """A "$(" in a value the chart passes on reaches the gateway as written, not expanded."""
    values = with_values(
        ("existing-secret.yaml",),
        {
            "tracing": {
                "otlpEndpoint": "http://otel-collector:4317/$(POD_NAME)",
                "serviceName": "gw-$(POD_NAME)$$",
            }
        },
    )
    container = container_environment(render_values(values))
    assert container["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317/$(POD_NAME)"
    assert container["OTEL_SERVICE_NAME"] == "gw-$(POD_NAME)$$"


@pytest.mark.parametrize(
    ("sampler", "argument"),
    [
        ("always_on", None),
        ("always_off", None),
        ("parentbased_always_on", None),
        ("parentbased_always_off", None),
        ("traceidratio", "0.1"),
        ("parentbased_traceidratio", "1.0"),
    ],
)
def test_sampler_argument_only_for_ratio_samplers(sampler: str, argument: str | None) -> None:
    rendered = render(
        ("existing-secret.yaml",),
        (
            "tracing.otlpEndpoint=http://otel-collector:4317",
            f"tracing.sampler={sampler}",
            "tracing.samplerArg=0.1",
        ),
    )
    env = rendered.env()
    assert env["OTEL_TRACES_SAMPLER"]["value"] == sampler
    if argument is None:
        assert "OTEL_TRACES_SAMPLER_ARG" not in env
    else:
        assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.1"


@pytest.mark.parametrize(
    ("sampler_arg", "rendered_as"),
    [("0.25", "0.25"), (0.25, "0.25"), (0, "0"), (1, "1"), ("1.0", "1.0"), ("0.001", "0.001")],
)
def test_sampler_argument_as_a_number_or_a_decimal_string(sampler_arg: Any, rendered_as: str) -> None:
    values = with_values(
        ("existing-secret.yaml",),
        {"tracing": {"otlpEndpoint": "http://otel-collector:4317", "samplerArg": sampler_arg}},
    )
    assert render_values(values).env()["OTEL_TRACES_SAMPLER_ARG"]["value"] == rendered_as


def test_tracing_defaults() -> None:
    tracing = chart().merge_values(user_values(("existing-secret.yaml",)))["tracing"]
    assert tracing == {
        "otlpEndpoint": "",
        "protocol": "grpc",
        "sampler": "parentbased_traceidratio",
        "samplerArg": "1.0",
        "serviceName": "graph-grpc-gateway",
        "resourceAttributes": {},
        "recordFullUrl": False,
    }
    sets = ("tracing.otlpEndpoint=http://otel-collector.monitoring:4317",)
    env = render(("existing-secret.yaml",), sets).env()
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "1.0"
    assert env["OTEL_SERVICE_NAME"]["value"] == "graph-grpc-gateway"
    assert env["GATEWAY_TRACE_URL_FULL"]["value"] == "false"
    # --set gives a boolean, which the gateway reads as written.
    on = render(("existing-secret.yaml",), (*sets, "tracing.recordFullUrl=true")).env()
    assert on["GATEWAY_TRACE_URL_FULL"]["value"] == "true"


@pytest.mark.parametrize(
    ("endpoint", "protocol", "port"),
    [
        ("http://otel-collector.monitoring:4317", "grpc", 4317),
        ("http://otel-collector.monitoring:4318", "http/protobuf", 4318),
        ("http://otel-collector.monitoring:4318/otlp", "http/protobuf", 4318),
        ("https://otel-collector.monitoring:4317", "grpc", 4317),
        ("http://otel-collector.monitoring", "grpc", 80),
        ("http://otel-collector.monitoring/", "http/protobuf", 80),
        ("https://otlp.example.com", "http/protobuf", 443),
        ("http://10.0.0.7:55680", "grpc", 55680),
        ("http://[fd00::10]:14317", "grpc", 14317),
        ("http://[fd00::10]", "grpc", 80),
        ("http://otel-collector:65535", "grpc", 65535),
    ],
)
def test_network_policy_opens_the_collector_port(endpoint: str, protocol: str, port: int) -> None:
    rendered = render(
        ("existing-secret.yaml",),
        (
            "networkPolicy.enabled=true",
            f"tracing.otlpEndpoint={endpoint}",
            f"tracing.protocol={protocol}",
        ),
    )
    assert collector_port(endpoint) == port
    off = render(("existing-secret.yaml",), ("networkPolicy.enabled=true",)).one("NetworkPolicy")
    # The endpoint adds one rule, for its port alone (443 is open for Graph already).
    assert rendered.one("NetworkPolicy")["spec"]["egress"] == [
        *off["spec"]["egress"],
        {"ports": [{"port": port, "protocol": "TCP"}]},
    ]


@pytest.mark.parametrize(
    ("override", "offending"),
    [
        ({"sampler": "sometimes"}, "/tracing/sampler"),
        ({"sampler": "AlwaysOn"}, "/tracing/sampler"),
        ({"samplerArg": 2}, "/tracing/samplerArg"),
        ({"samplerArg": "2"}, "/tracing/samplerArg"),
        ({"samplerArg": -0.1}, "/tracing/samplerArg"),
        ({"samplerArg": "1.5"}, "/tracing/samplerArg"),
        ({"samplerArg": "half"}, "/tracing/samplerArg"),
        ({"samplerArg": True}, "/tracing/samplerArg"),
        ({"otlpEndpoint": "not a url"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "otel-collector:4317"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "grpc://otel-collector:4317"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://user:secret@otel-collector:4317"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://otel-collector:0"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://otel-collector:65536"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://otel-collector:"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://otel-collector:4317?x=1"}, "/tracing/otlpEndpoint"),
        ({"otlpEndpoint": "http://otel-collector:4317 "}, "/tracing/otlpEndpoint"),
        ({"protocol": "http/json"}, "/tracing/protocol"),
        ({"serviceName": ""}, "/tracing/serviceName"),
        ({"serviceName": "graph gateway"}, "/tracing/serviceName"),
        ({"resourceAttributes": {"team": 7}}, "/tracing/resourceAttributes/team"),
        ({"resourceAttributes": {"bad key": "x"}}, "invalid propertyName 'bad key'"),
        ({"resourceAttributes": {"a,b": "x"}}, "invalid propertyName 'a,b'"),
        ({"resourceAttributes": {"team": "tab\there"}}, "/tracing/resourceAttributes/team"),
        ({"resourceAttributes": {"team": "two\nlines"}}, "/tracing/resourceAttributes/team"),
        ({"resourceAttributes": []}, "/tracing/resourceAttributes"),
        ({"recordFullUrl": "true"}, "/tracing/recordFullUrl"),
        ({"recordFullUrl": 1}, "/tracing/recordFullUrl"),
        ({"enabled": True}, "enabled"),
    ],
)
def test_schema_refuses_bad_tracing_values(override: dict[str, Any], offending: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render_values(
            with_values(
                ("existing-secret.yaml",),
                {"tracing": {"otlpEndpoint": "http://otel-collector.monitoring:4317", **override}},
            )
        )
    message = str(caught.value)
    assert "schema" in message and offending in message, message


@pytest.mark.parametrize("key", [*CHART_RESOURCE_KEYS, "service.name"])
def test_the_chart_refuses_resource_attributes_it_sets(key: str) -> None:
    values = with_values(
        ("existing-secret.yaml",),
        {"tracing": {"otlpEndpoint": "http://otel-collector:4317", "resourceAttributes": {key: "mine"}}},
    )
    with pytest.raises(helm.HelmRenderError) as caught:
        render_values(values)
    assert f"tracing.resourceAttributes cannot set {key}" in str(caught.value)
    if key == "service.name":
        assert "tracing.serviceName" in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "wanted"),
    [
        ("not a url", 'tracing.otlpEndpoint "not a url" is not an http:// or https:// URL'),
        ("http://otel-collector:99999", '"http://otel-collector:99999" names port 99999'),
        ("http://otel-collector:0", "a port is 1 to 65535"),
    ],
)
def test_the_network_policy_refuses_an_endpoint_the_schema_would(
    tmp_path: Path, endpoint: str, wanted: str
) -> None:
    """Without the schema (a copy of the chart with none), no wrong port is opened."""
    copied = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copied)
    (copied / "values.schema.json").unlink()
    sets = ("networkPolicy.enabled=true", f"tracing.otlpEndpoint={endpoint}")
    values = user_values(("existing-secret.yaml",), sets)
    with pytest.raises(helm.HelmRenderError) as caught:
        helm.Chart.load(copied).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    assert wanted in str(caught.value)


# ---------------------------------------------------------------------------
# README's values example
# ---------------------------------------------------------------------------


def readme_block(language: str, first_line: str) -> str:
    """The body of the README's fenced block of that language whose first line is first_line."""
    found = re.findall(
        rf"^```{language}\n({re.escape(first_line)}\n.*?)^```$", README.read_text(), re.M | re.S
    )
    assert len(found) == 1, f"expected one ```{language} block starting {first_line!r} in README.md"
    return found[0]


def test_readme_tls_and_policy_example(tmp_path: Path) -> None:
    """The README's TLS, mTLS and policy example installs as shown."""
    text = README.read_text()
    assert "-f values-secure.yaml --set-file policy.inline=policy.toml" in text
    values_file = VALUES_DIR / "existing-secret.yaml"
    secure = helm.values_from_yaml(readme_block("yaml", "# values-secure.yaml"))
    policy = tmp_path / "policy.toml"
    policy.write_text(readme_block("toml", "# policy.toml"))
    tomllib.loads(policy.read_text())
    values = merge(
        merge(helm.values_from_yaml(values_file.read_text()), secure),
        helm.parse_set_file(f"policy.inline={policy}"),
    )
    rendered = render_values(values)
    for version in KUBE_VERSIONS:
        errors = [e for obj in rendered.objects for e in schema_errors(obj, version)]
        assert not errors, "\n".join(errors)
    env = rendered.env()
    tls = chart().merge_values(values)["tls"]
    assert rendered.mounted_file(env["GATEWAY_TLS_CERT_FILE"]["value"]) == (
        "Secret",
        tls["existingSecret"],
        "tls.crt",
    )
    assert rendered.mounted_file(env["GATEWAY_TLS_CLIENT_CA_FILE"]["value"]) == client_ca_source(tls)
    assert env["GATEWAY_TLS_CLIENT_AUTH"]["value"] == secure["tls"]["clientAuth"]
    kind, name, key = rendered.mounted_file(env["GATEWAY_POLICY_FILE"]["value"])
    assert rendered.named(kind, name)["data"][key] == policy.read_text()
    assert_readiness(rendered, over_grpc=False)


def test_readme_redis_examples() -> None:
    """The README's two ways to point the chart at a Redis render as it says."""
    base = user_values(("existing-secret.yaml",), ("networkPolicy.enabled=true",))
    azure = merge(base, helm.values_from_yaml(readme_block("yaml", "# values-redis.yaml")))
    secret = azure["budget"]["redis"]["existingSecret"]
    rendered = render_values(azure)
    env = rendered.env()
    assert env["GRAPH_BUDGET_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["name"],
        "key": "url",
    }
    path = env["GRAPH_BUDGET_REDIS_PASSWORD_FILE"]["value"]
    assert rendered.mounted_secret_file(path) == (secret["name"], "access-key")
    egress = {p["port"] for rule in rendered.one("NetworkPolicy")["spec"]["egress"] for p in rule["ports"]}
    assert 6380 in egress
    created = "--from-literal=url=rediss://<name>.redis.cache.windows.net:6380 --from-literal=access-key="
    assert created in README.read_text()
    (line,) = [l for l in README.read_text().splitlines() if "--set budget.redis.url=" in l]
    sets = tuple(re.findall(r"--set (\S+)", line.strip().strip("`")))
    assert len(sets) == 4, sets
    in_cluster = render_values(merge(base, user_values((), sets)))
    env = in_cluster.env()
    assert env["GRAPH_BUDGET_REDIS_URL"]["from"] == "configMap"
    assert in_cluster.mounted_secret_file(env["GRAPH_BUDGET_REDIS_PASSWORD_FILE"]["value"]) == (
        "redis",
        "redis-password",
    )
    for version in KUBE_VERSIONS:
        for manifests in (rendered, in_cluster):
            errors = [e for obj in manifests.objects for e in schema_errors(obj, version)]
            assert not errors, "\n".join(errors)



def test_readme_tracing_example() -> None:
    """The README's trace export example renders as its table says."""
    (block,) = [
        b for b in re.findall(r"^```sh\n(.*?)^```$", README.read_text(), re.M | re.S) if "tracing." in b
    ]
    words = shlex.split(block.replace("\\\n", " "))
    sets = tuple(words[i + 1] for i, word in enumerate(words) if word == "--set")
    assert len(sets) == 3 and sets[0] == "tracing.otlpEndpoint=http://otel-collector.monitoring:4317", sets
    rendered = render_values(user_values(("existing-secret.yaml",), ("networkPolicy.enabled=true", *sets)))
    container = container_environment(rendered)
    assert container["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4317"
    assert container["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert container["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    pairs = decode_resource_attributes(container["OTEL_RESOURCE_ATTRIBUTES"])
    assert pairs[-1] == ("deployment.environment.name", "production")
    assert {"ports": [{"port": 4317, "protocol": "TCP"}]} in rendered.one("NetworkPolicy")["spec"]["egress"]
    text = README.read_text()
    for row in (
        "| `tracing.otlpEndpoint` | `OTEL_EXPORTER_OTLP_ENDPOINT` | `\"\"` (off) |",
        "| `tracing.protocol` | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` |",
        "| `tracing.sampler` | `OTEL_TRACES_SAMPLER` | `parentbased_traceidratio` |",
        "| `tracing.samplerArg` | `OTEL_TRACES_SAMPLER_ARG` | `\"1.0\"` |",
        "| `tracing.serviceName` | `OTEL_SERVICE_NAME` | `graph-grpc-gateway` |",
        "| `tracing.resourceAttributes` | `OTEL_RESOURCE_ATTRIBUTES` | `{}` |",
        "| `tracing.recordFullUrl` | `GATEWAY_TRACE_URL_FULL` | `false` |",
    ):
        assert row in text, row
    for version in KUBE_VERSIONS:
        errors = [e for obj in rendered.objects for e in schema_errors(obj, version)]
        assert not errors, "\n".join(errors)

# ---------------------------------------------------------------------------
# NOTES.txt
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Grafana dashboard and Prometheus alerts
# ---------------------------------------------------------------------------

PROMETHEUS_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
# The chart's scenario with the PrometheusRule alone, with no runbook base URL.
RULE_ONLY = ("prometheusRule.enabled=true",)


def promtool() -> str:
    found = shutil.which("promtool") or str(REPO / ".cache" / "tools" / "bin" / "promtool")
    assert Path(found).is_file(), "promtool not found: run `bash scripts/tools.sh` (or source it)"
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def dashboard_configmaps(rendered: Rendered) -> list[dict[str, Any]]:
    return [c for c in rendered.all("ConfigMap") if c["metadata"]["name"].endswith("-dashboards")]


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def rule_files_alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES_FILE.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    anchors = set()
    for heading in re.findall(r"^#+ +(.+?) *$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_there_are_dashboards_and_rules() -> None:
    assert DASHBOARD_FILES, f"no dashboards in {DASHBOARDS_DIR}"
    assert len(rule_files_alerts()) >= 7


def test_dashboard_configmap_carries_every_dashboard_for_the_sidecar() -> None:
    rendered = render_scenario("everything-on")
    values = scenario_values("everything-on")["dashboards"]
    (configmap,) = dashboard_configmaps(rendered)
    metadata = configmap["metadata"]
    assert metadata["namespace"] == values["namespace"] == "monitoring"
    assert metadata["labels"]["grafana_dashboard"] == "1"
    for key, value in values["labels"].items():
        assert metadata["labels"][key] == value
    assert metadata["annotations"] == values["annotations"]
    # The chart's files as they are, one key each.
    assert configmap["data"] == {f.name: f.read_text() for f in DASHBOARD_FILES}


def test_dashboard_configmap_label_and_namespace_follow_the_values() -> None:
    rendered = render_scenario(
        "default",
        ("dashboards.enabled=true", "dashboards.label=grafana_dashboard_gw", "dashboards.labelValue=yes"),
    )
    (configmap,) = dashboard_configmaps(rendered)
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["metadata"]["labels"]["grafana_dashboard_gw"] == "yes"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert "annotations" not in configmap["metadata"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_json(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] >= 39, "the schema of a current Grafana (11 or later)"
    assert "__inputs" not in dashboard, "provisioned dashboards take their data source from the variable"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "pod"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == PROMETHEUS_DATASOURCE
        assert variables[name]["query"]["query"] == variables[name]["definition"]
    assert '$namespace' in variables["pod"]["definition"], "pods of the chosen namespace"
    assert variables["pod"]["multi"] and variables["pod"]["includeAll"]

    panels = all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 15
    for panel in graphs:
        where = f"{path.name}: panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == PROMETHEUS_DATASOURCE, where
        assert panel.get("description"), where
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where
        assert panel["targets"], where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["datasource"] == PROMETHEUS_DATASOURCE, where
            assert 'namespace="$namespace"' in target["expr"], where
            assert 'pod=~"$pod"' in target["expr"], where
    titles = [p["title"] for p in graphs]
    assert len(titles) == len(set(titles)), titles


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_queries_are_promql(path: Path, tmp_path: Path) -> None:
    """promtool parses every panel's query, as a recording rule, with the
    variables replaced by what Grafana would put there."""
    dashboard = json.loads(path.read_text())
    rules = []
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "2m")
                .replace("$namespace", "gateways")
                .replace("$pod", ".*")
            )
            assert "$" not in expr, expr
            rules.append({"record": f"panel_{panel['id']}_{target['refId']}", "expr": expr})
    rule_file = tmp_path / "panels.rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool("check", "rules", str(rule_file))


def test_promtool_checks_the_rules() -> None:
    output = run_promtool("check", "rules", str(RULES_FILE))
    assert f"SUCCESS: {len(rule_files_alerts())} rules found" in output, output


def test_promtool_unit_tests_of_every_alert() -> None:
    tests = yaml.safe_load(RULES_TESTS.read_text())
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            counts = firing if check["exp_alerts"] else quiet
            counts[check["alertname"]] = counts.get(check["alertname"], 0) + 1
    alerts = {a["alert"] for a in rule_files_alerts()}
    assert set(firing) == alerts, "every alert has a series that makes it fire"
    assert set(quiet) == alerts, "every alert has a series that must not make it fire"
    assert "SUCCESS" in run_promtool("test", "rules", RULES_TESTS.name, cwd=RULES_TESTS.parent)


def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same tests against a rule file whose
    token alert waits 10 minutes instead of 5."""
    rules = RULES_FILE.read_text()
    assert "for: 5m" in rules
    (tmp_path / "rules.yaml").write_text(
        rules.replace(
            "graph_gateway_token_ready) == 0\n        for: 5m", "graph_gateway_token_ready) == 0\n        for: 10m"
        )
    )
    tests = yaml.safe_load(RULES_TESTS.read_text())
    tests["rule_files"] = ["rules.yaml"]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "GraphGatewayNoGraphToken" in done.stdout + done.stderr


def test_every_alert_is_actionable() -> None:
    readme = README.read_text()
    anchors = github_anchors(readme)
    for alert in rule_files_alerts():
        name = alert["alert"]
        annotations = alert["annotations"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name
        assert annotations["summary"], name
        metrics = set(re.findall(r"\bgraph_gateway_[a-z_]+", alert["expr"]))
        assert metrics, name
        assert metrics & set(re.findall(r"\bgraph_gateway_[a-z_]+", annotations["description"])), (
            f"{name}: the description names the metric it alerts on"
        )
        assert annotations["runbook_url"] == f"README.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no README section {name}"


def test_prometheusrule_is_the_rules_file() -> None:
    rule = render_scenario("default", RULE_ONLY).one("PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())


def test_prometheusrule_labels_namespace_and_runbook_base() -> None:
    rendered = render_scenario("everything-on")
    values = scenario_values("everything-on")["prometheusRule"]
    rule = rendered.one("PrometheusRule")
    for key, value in values["labels"].items():
        assert rule["metadata"]["labels"][key] == value
    expected = yaml.safe_load(RULES_FILE.read_text())
    for group in expected["groups"]:
        for r in group["rules"]:
            r["annotations"]["runbook_url"] = values["runbookBaseUrl"] + r["annotations"]["runbook_url"]
            r["labels"] = {**values["ruleLabels"], **r["labels"]}
    assert rule["spec"] == expected
    moved = render_scenario("default", (*RULE_ONLY, "prometheusRule.namespace=monitoring")).one("PrometheusRule")
    assert moved["metadata"]["namespace"] == "monitoring"
    severity = render_scenario("default", (*RULE_ONLY, "prometheusRule.ruleLabels.severity=page"))
    for group in severity.one("PrometheusRule")["spec"]["groups"]:
        for r in group["rules"]:
            assert r["labels"]["severity"] in ("critical", "warning"), "an alert's own severity wins"


def test_rendered_prometheusrule_passes_promtool(tmp_path: Path) -> None:
    rule = render_scenario("everything-on").one("PrometheusRule")
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    assert "SUCCESS" in run_promtool("check", "rules", str(path))


def test_prometheusrule_schema_rejects_bad_objects() -> None:
    good = render_scenario("everything-on").one("PrometheusRule")
    typo = copy.deepcopy(good)
    typo["spec"]["groups"][0]["rules"][0]["annotation"] = {}
    bad_for = copy.deepcopy(good)
    bad_for["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    no_expr = copy.deepcopy(good)
    del no_expr["spec"]["groups"][0]["rules"][0]["expr"]
    bad_label = copy.deepcopy(good)
    bad_label["spec"]["groups"][0]["rules"][0]["labels"]["n"] = 1
    for version in KUBE_VERSIONS:
        assert schema_errors(good, version) == []
        for bad in (typo, bad_for, no_expr, bad_label):
            assert schema_errors(bad, version), bad


def test_readme_explains_every_panel() -> None:
    readme = README.read_text()
    for path in DASHBOARD_FILES:
        for panel in all_panels(json.loads(path.read_text())["panels"]):
            if panel["type"] != "row":
                assert f"**{panel['title']}**" in readme, f"README says nothing of the panel {panel['title']!r}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_notes(scenario: str) -> None:
    notes = render_scenario(scenario).notes
    values = scenario_values(scenario)
    assert notes, "NOTES.txt did not render"
    assert re.search(r"kubectl\b[^\n]*\bport-forward\b", notes), "no kubectl port-forward command"
    grpcurl = [line.strip() for line in notes.splitlines() if line.strip().startswith("grpcurl ")]
    assert grpcurl, "no grpcurl command"
    if values["tls"]["enabled"]:
        assert "PLAINTEXT" not in notes
        assert values["tls"]["existingSecret"] in notes, "NOTES.txt names the certificate's Secret"
        for line in grpcurl:
            assert "-plaintext" not in line and "-cacert " in line, line
            assert ("-cert " in line and "-key " in line) is bool(
                values["tls"]["clientCa"]["existingSecret"]
                or values["tls"]["clientCa"]["existingConfigMap"]
            ), line
    else:
        # Plaintext is the explicit choice of a mesh: NOTES.txt must say so.
        assert "PLAINTEXT" in notes and "GATEWAY_PLAINTEXT=true" in notes
        assert "mesh" in notes and "terminates TLS" in notes
        assert all(line.startswith("grpcurl -plaintext ") for line in grpcurl), grpcurl
    policy = values["policy"]
    open_gateway = (
        not (policy["inline"] or policy["existingConfigMap"]) and policy["allowUnauthenticated"]
    )
    assert ("every caller that reaches the\ngRPC port may call every RPC" in notes) is open_gateway
