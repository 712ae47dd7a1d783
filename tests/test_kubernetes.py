"""deploy/kubernetes: the kustomize manifests, rendered and validated against Kubernetes' schemas.

`kubectl kustomize` renders both entry points (base, and with-web), where kubectl is installed
(Debian: kubernetes-client; .ci/run installs it); the manifests are otherwise read file by file.
Every built-in kind is validated strictly (unknown fields refused) against the OpenAPI schemas
kubernetes-validate ships, for an old and the newest Kubernetes; KEDA's ScaledObject (a CRD, no
schema there) is checked field by field. Then the promises: probes on paths the processes serve,
the image's uid, a read-only root, resources, a PodDisruptionBudget that selects the workers, a
scaler on a metric retryd serves, fed by the always-on `retryd metrics` exporter.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.test_container import METRICS, promql_metric_names
from worker.config import MetricsSettings, WebSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
ENTRY_POINTS = ("base", "with-web")
VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
IMAGE_UID = 10001  # the Dockerfile's USER

Resource = dict[str, Any]


def read_kustomization(directory: Path) -> list[Resource]:
    """The resources a kustomization lists, read without kustomize (no transformations)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    resources: list[Resource] = []
    for entry in [*kustomization.get("bases", []), *kustomization["resources"]]:
        path = (directory / entry).resolve()
        if path.is_dir():  # a directory: another kustomization
            resources += read_kustomization(path)
        else:
            resources += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return resources


def render(entry_point: str) -> list[Resource]:
    """`kubectl kustomize` of one entry point, or its files as written where kubectl is missing."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return read_kustomization(KUBERNETES / entry_point)
    built = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / entry_point)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


@pytest.fixture(scope="module", params=ENTRY_POINTS)
def resources(request: pytest.FixtureRequest) -> list[Resource]:
    return render(str(request.param))


def named(resources: list[Resource], kind: str, name: str) -> Resource:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def container_of(deployment: Resource) -> Resource:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def deployments(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] == "Deployment"]


def test_kustomize_renders_both_entry_points() -> None:
    """base: workers, their PDB, the exporter and its Service, the ScaledObject; with-web adds
    the dashboard and its Service."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed (Debian: kubernetes-client; .ci/run installs it)")
    kinds = {
        e: sorted(f"{r['kind']}/{r['metadata']['name']}" for r in render(e)) for e in ENTRY_POINTS
    }
    assert kinds["base"] == [
        "Deployment/retryd-metrics",
        "Deployment/retryd-worker",
        "PodDisruptionBudget/retryd-worker",
        "ScaledObject/retryd-worker",
        "Service/retryd-metrics",
    ]
    assert sorted(set(kinds["with-web"]) - set(kinds["base"])) == [
        "Deployment/retryd-web",
        "Service/retryd-web",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_built_in_resource_is_valid_for_kubernetes(
    resources: list[Resource], version: str
) -> None:
    for resource in resources:
        if resource["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_refuses_a_misspelt_field(resources: list[Resource]) -> None:
    """Strict validation is not a formality: one misspelt key fails it."""
    worker = yaml.safe_load(yaml.safe_dump(named(resources, "Deployment", "retryd-worker")))
    container_of(worker)["livenesProbe"] = container_of(worker).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(worker, VERSIONS[-1], strict=True)


def test_pods_run_as_the_image_user_with_a_read_only_root(resources: list[Resource]) -> None:
    for deployment in deployments(resources):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID
        assert pod["automountServiceAccountToken"] is False
        container = container_of(deployment)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        assert "cpu" not in container["resources"]["limits"]  # throttling would stall handlers


def test_each_deployment_runs_its_command_with_probes_it_serves(resources: list[Resource]) -> None:
    """The worker and the exporter probe /healthz and /readyz on the [metrics] port; the web
    dashboard /healthz on the [web] port; each container runs the right subcommand."""
    commands = {"retryd-worker": ["run"], "retryd-metrics": ["metrics"], "retryd-web": ["web"]}
    ports = {"metrics": MetricsSettings().port, "http": WebSettings().port}
    for deployment in deployments(resources):
        container = container_of(deployment)
        assert container["args"] == commands[deployment["metadata"]["name"]]
        (port,) = container["ports"]
        assert port["containerPort"] == ports[port["name"]]
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert live["path"] == "/healthz"
        assert (live["port"], ready["port"]) == (port["name"], port["name"])
        assert ready["path"] == ("/healthz" if port["name"] == "http" else "/readyz")
        env = {e["name"]: e for e in container["env"]}
        assert env["RETRYD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "retryd-redis"


def test_workers_drain_before_they_are_killed(resources: list[Resource]) -> None:
    pod = named(resources, "Deployment", "retryd-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > WorkerSettings().shutdown_grace


def test_the_disruption_budget_selects_the_workers(resources: list[Resource]) -> None:
    worker = named(resources, "Deployment", "retryd-worker")
    budget = named(resources, "PodDisruptionBudget", "retryd-worker")["spec"]
    assert budget["maxUnavailable"] == 1  # minAvailable would block drains at zero replicas
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_keda_scales_the_workers_on_served_metrics_from_the_exporter(
    resources: list[Resource],
) -> None:
    scaled = named(resources, "ScaledObject", "retryd-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "retryd-worker"
    assert spec["minReplicaCount"] == 0 < spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert set(metadata) == {"serverAddress", "query", "threshold", "activationThreshold"}
    assert all(isinstance(v, str) for v in metadata.values())  # KEDA wants strings
    names = promql_metric_names(metadata["query"])
    assert "retryd_tasks_ready" in names
    assert names <= METRICS
    exporter = named(resources, "Deployment", "retryd-metrics")
    exporter_label = exporter["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
    assert f'app_kubernetes_io_name="{exporter_label}"' in metadata["query"]
    assert exporter["spec"]["replicas"] >= 1  # always on, so the metric exists at zero workers
