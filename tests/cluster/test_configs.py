"""The scale-out configs stay consistent with the code: settings names, ports, probes."""

from __future__ import annotations

from pathlib import Path

import yaml

from cluster.settings import ClusterSettings
from gateway.settings import GatewaySettings
from store.settings import StoreSettings

CONFIGS = Path(__file__).resolve().parents[2] / "cluster" / "configs"
KNOWN = {
    "SITEDESK_" + name.upper()
    for cls in (ClusterSettings, GatewaySettings, StoreSettings)
    for name in cls.model_fields
}


def test_kuberay_gateway_uses_real_settings_and_probes() -> None:
    docs = list(yaml.safe_load_all((CONFIGS / "kuberay.yaml").read_text()))
    cluster, gateway = docs
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["port"] != "6379"
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"] for e in container["env"]}
    assert env <= KNOWN, env - KNOWN
    assert {"SITEDESK_RAY_ADDRESS", "SITEDESK_REDIS_URL", "SITEDESK_DATABASE_URL"} <= env
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_cluster_launcher_keeps_ray_off_the_redis_port() -> None:
    cfg = yaml.safe_load((CONFIGS / "ray-cluster.yaml").read_text())
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--port=6380" in head and "6379" not in head
    assert any("sitedesk db upgrade" in c for c in cfg["head_setup_commands"])


def test_configs_run_ray_with_token_auth_and_no_open_dashboard() -> None:
    """Joining the cluster is root on every managed host: no node starts Ray without a token,
    and no dashboard listens on every interface."""
    text = (CONFIGS / "ray-cluster.yaml").read_text() + (CONFIGS / "kuberay.yaml").read_text()
    everywhere = "0.0.0.0"  # noqa: S104 - looked for, not bound
    assert everywhere not in text.replace(f'SITEDESK_HTTP_HOST, value: "{everywhere}"', "")

    cfg = yaml.safe_load((CONFIGS / "ray-cluster.yaml").read_text())
    for cmd in [*cfg["head_start_ray_commands"], *cfg["worker_start_ray_commands"]]:
        if "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd and "RAY_AUTH_TOKEN_PATH=" in cmd, cmd

    cluster, gateway = yaml.safe_load_all((CONFIGS / "kuberay.yaml").read_text())
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    for pod in pods:
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"] == "token"
        mounted = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert any(env["RAY_AUTH_TOKEN_PATH"].startswith(m) for m in mounted)
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    gw_env = {e["name"] for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SITEDESK_RAY_TOKEN_FILE" in gw_env
