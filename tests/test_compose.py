"""docker-compose.yml cannot run here (no Docker engine), so it is checked as data: against the
Compose Specification's JSON schema (the copy vendored in the check-jsonschema package from PyPI,
never fetched at run time) and against this project's own rules. The deploy scripts that can run
here do: the namespace script against the Temporal dev server, the worker health check against
a real worker."""

from __future__ import annotations

import ast
import asyncio
import importlib.resources
import importlib.util
import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from iop.worker import build_worker
from store.db import make_engine
from tests.conftest import binary, unique
from workflows import search

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = ("api", "worker", "migrate", "mllp")
SECRETS = (
    "POSTGRES_PASSWORD",
    "IOP_DB_PASSWORD",
    "TEMPORAL_DB_PASSWORD",
    "IOP_CODEC_KEYS",
    "IOP_AUDIT_KEYS",
    "IOP_METRICS_TOKEN",
)
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose_schema() -> dict:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error} (enough for this file)."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return VARIABLE.sub(one, value)


def env_of(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def long_running(service: dict) -> bool:
    return service.get("restart", "no") != "no"


# --- the Compose Specification ----------------------------------------------------------------


def test_the_file_is_valid_compose():
    schema = compose_schema()
    assert schema.get("title") == "Compose Specification"
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors
    # The schema really checks what matters here: a made-up condition is refused.
    broken = {"services": {"a": {"image": "x:1", "depends_on": {"b": {"condition": "service_ready"}}}}}
    assert list(validator.iter_errors(broken))


def test_the_stack_has_every_part():
    assert {
        "postgres",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "api",
        "worker",
        "mllp",
        "prometheus",
    } == set(SERVICES)


# --- images, secrets, health --------------------------------------------------------------------


def test_images_are_pinned():
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"{name} names no image"
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image) and "latest" not in image, f"{name}: {image}"
    tags = {SERVICES[s]["image"].split(":")[1] for s in ("temporal", "temporal-schema", "temporal-setup")}
    assert len(tags) == 1, f"Temporal server and admin tools must be one release: {tags}"


def test_the_app_image_is_built_from_the_project():
    for name in APP_SERVICES:
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["image"] == SERVICES["api"]["image"]


def test_the_dockerfile_copies_every_package_the_app_imports():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.M))
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    needed: set[str] = set()
    for package in copied:
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    needed.add(node.module.split(".")[0])
                elif isinstance(node, ast.Import):
                    needed.update(alias.name.split(".")[0] for alias in node.names)
    assert "api" in copied and "iop" in copied
    assert (needed & local) <= copied, f"imported but not in the image: {(needed & local) - copied}"
    assert "COPY deploy/healthcheck.py" in dockerfile


def test_secrets_are_required_from_the_environment():
    for secret in SECRETS:
        uses = [m for m in VARIABLE.finditer(TEXT) if m.group(1) == secret]
        assert uses, secret
        assert all(m.group(2) == ":?" for m in uses), f"{secret} must always be ${{{secret}:?...}}"
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|PWD|SECRET|KEYS|TOKEN", key):
                assert VARIABLE.fullmatch(str(value)), f"{name}.{key} is not taken from the environment"
            if key.endswith("DATABASE_URL"):
                assert re.search(r":\$\{\w+:\?[^}]*\}@", str(value)), f"{name}.{key} embeds a literal password"
    # Every required variable set, the file resolves; any one missing, it does not.
    env = dict.fromkeys(SECRETS, "s3cret")
    interpolate(TEXT, env)
    for secret in SECRETS:
        with pytest.raises(KeyError):
            interpolate(TEXT, {k: v for k, v in env.items() if k != secret})


def test_every_dependency_waits_for_a_condition():
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            expected = "service_healthy" if long_running(SERVICES[target]) else "service_completed_successfully"
            assert spec.get("condition") == expected, f"{name} -> {target}: {spec}"


def test_long_running_services_have_health_checks():
    for name, service in SERVICES.items():
        if long_running(service):
            check = service.get("healthcheck")
            assert check and check["test"] and not check.get("disable"), name
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        else:
            assert service["restart"] == "no" and "healthcheck" not in service, name
    assert SERVICES["worker"]["healthcheck"]["test"][-2:] == ["/app/deploy/healthcheck.py", "worker"]
    assert SERVICES["api"]["healthcheck"]["test"][-2:] == ["/app/deploy/healthcheck.py", "api"]
    assert SERVICES["mllp"]["healthcheck"]["test"][-2:] == ["/app/deploy/healthcheck.py", "mllp"]


def test_published_ports_are_on_this_host_only():
    """Plain protocols (HTTP, MLLP, Temporal's gRPC) go out only through a TLS proxy on this host."""
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


# --- the app ----------------------------------------------------------------------------------


def test_api_and_worker_run_in_production_with_the_codec_keys():
    env = dict.fromkeys(SECRETS, "s3cret")
    resolved = {name: {k: interpolate(v, env) for k, v in env_of(name).items()} for name in APP_SERVICES}
    for name in ("api", "worker", "mllp"):
        mine = resolved[name]
        assert mine["IOP_ENV"] == "production", name
        assert env_of(name)["IOP_CODEC_KEYS"].startswith("${IOP_CODEC_KEYS:?"), name
        assert mine["IOP_TEMPORAL_ADDRESS"] == "temporal:7233", name
        assert mine["IOP_TEMPORAL_NAMESPACE"] == env_of("temporal-setup")["IOP_TEMPORAL_NAMESPACE"], name
        assert mine["IOP_DATABASE_URL"].startswith("postgresql+psycopg://iop:s3cret@postgres:5432/iop"), name
    for key in ("IOP_CODEC_KEYS", "IOP_DATABASE_URL", "IOP_TASK_QUEUE", "IOP_TEMPORAL_NAMESPACE"):
        assert resolved["api"][key] == resolved["worker"][key] == resolved["mllp"][key], key
    assert resolved["migrate"]["IOP_DATABASE_URL"] == resolved["api"]["IOP_DATABASE_URL"]
    assert resolved["api"]["IOP_API_HOST"] == "0.0.0.0"


def test_the_mllp_listener_admits_only_its_allowlist():
    from ingest.mllp import parse_allowlist

    service, env = SERVICES["mllp"], env_of("mllp")
    assert service["command"] == ["iop", "hl7", "listen"]
    # MLLP has no credentials: the listener serves the one lab whose registered token it names, and
    # runs only where a site asks for it (a profile), once that token exists.
    assert service["profiles"] == ["mllp"] and env["IOP_MLLP_LAB_TOKEN"] == "${IOP_MLLP_LAB_TOKEN:-}"
    assert service["depends_on"] == SERVICES["api"]["depends_on"]
    # Inside its container it listens on all interfaces (the container's own network); published
    # on this host only, for the TLS proxy in front (README, "Labs over MLLP").
    assert env["IOP_MLLP_HOST"] == "0.0.0.0" and env["IOP_MLLP_PORT"] == "2575"
    assert service["ports"] == ["127.0.0.1:2575:2575"]
    # The allowlist comes from the environment; unset, only loopback inside the container: no lab.
    assert env["IOP_MLLP_ALLOW"].startswith("${IOP_MLLP_ALLOW:-")
    default = parse_allowlist(interpolate(env["IOP_MLLP_ALLOW"], {}))
    assert default.permits("127.0.0.1") and not default.permits("172.17.0.1") and not default.permits("10.1.1.1")
    given = parse_allowlist(interpolate(env["IOP_MLLP_ALLOW"], {"IOP_MLLP_ALLOW": "127.0.0.1,172.16.0.0/12"}))
    assert given.permits("172.17.0.1")


def test_migrations_run_once_before_the_api_and_the_worker():
    assert SERVICES["migrate"]["command"] == ["iop", "db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["api"]["command"] == ["iop", "api"] and SERVICES["worker"]["command"] == ["iop", "worker"]
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert SERVICES[name]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def test_the_ui_decodes_through_the_api_codec_endpoint():
    ui = env_of("temporal-ui")
    api = env_of("api")
    for env in (
        {},
        {"IOP_PUBLIC_API_URL": "https://api.clinic.example", "IOP_TEMPORAL_UI_ORIGIN": "https://ui.clinic.example"},
    ):
        endpoint = interpolate(ui["TEMPORAL_CODEC_ENDPOINT"], env)
        api_url = interpolate("${IOP_PUBLIC_API_URL:-http://localhost:8000}", env)
        assert endpoint == api_url + "/codec"  # the UI posts to {endpoint}/decode and /encode
        if env:
            assert interpolate(api["IOP_TEMPORAL_UI_ORIGIN"], env) == "https://ui.clinic.example"
    # With the defaults, the API and the UI are where the file publishes them.
    assert ui["TEMPORAL_CODEC_ENDPOINT"].startswith("${IOP_PUBLIC_API_URL:-http://localhost:8000}")
    assert "127.0.0.1:8000:8000" in SERVICES["api"]["ports"]
    assert interpolate(api["IOP_TEMPORAL_UI_ORIGIN"], {}) == "http://localhost:8080"
    assert "127.0.0.1:8080:8080" in SERVICES["temporal-ui"]["ports"]
    assert ui["TEMPORAL_DEFAULT_NAMESPACE"] == api["IOP_TEMPORAL_NAMESPACE"]


# --- metrics ----------------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_with_its_token_and_the_worker_on_the_compose_network():
    from iop.settings import Settings
    from iop.telemetry import metrics_address

    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"iop-api", "iop-worker"}
    targets = {name: [t for group in job["static_configs"] for t in group["targets"]] for name, job in jobs.items()}
    # The API: the port it listens on in its container, with the bearer token its /metrics demands.
    assert targets["iop-api"] == [f"api:{env_of('api')['IOP_API_PORT']}"]
    api_auth = jobs["iop-api"]["authorization"]
    assert api_auth["type"] == "Bearer" and "credentials" not in api_auth  # never a literal token
    secret = api_auth["credentials_file"].removeprefix("/run/secrets/")
    assert secret in SERVICES["prometheus"]["secrets"]
    assert COMPOSE["secrets"][secret] == {"environment": "IOP_METRICS_TOKEN"}
    assert env_of("api")["IOP_METRICS_TOKEN"].startswith("${IOP_METRICS_TOKEN:?")
    # The worker: the SDK's endpoint at the address its setting names, on the compose network only.
    worker_env = env_of("worker")
    port = metrics_address(Settings(worker_metrics_address=worker_env["IOP_WORKER_METRICS_ADDRESS"])).split(":")[1]
    assert targets["iop-worker"] == [f"worker:{port}"]
    assert SERVICES["worker"].get("expose") == [port] and "ports" not in SERVICES["worker"]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())
    # Prometheus: its config mounted where its command reads it, its data on a volume, up after what it scrapes.
    prometheus = SERVICES["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    assert mounts[config_flag.split("=", 1)[1]] == "./deploy/prometheus.yml"
    data_flag = next(a for a in prometheus["command"] if a.startswith("--storage.tsdb.path="))
    assert mounts[data_flag.split("=", 1)[1]] in COMPOSE["volumes"]
    assert set(prometheus["depends_on"]) == {"api", "worker"}


def test_the_grafana_dashboard_reads_prometheus_through_a_chosen_datasource():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "iop-workflows.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used in variables or used.startswith("__"), (panel["title"], used)
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in (
        "api p99 latency by route",
        "rate by status",
        "workflow task execution",
        "activity execution",
        "schedule-to-start",
    ):
        assert needed in titles, needed


# --- Temporal ---------------------------------------------------------------------------------


def test_temporal_server_reads_its_database_settings():
    """The names the server's config template reads (DB, DB_PORT, POSTGRES_SEEDS, POSTGRES_USER,
    POSTGRES_PWD, NUM_HISTORY_SHARDS, BIND_ON_IP, DYNAMIC_CONFIG_FILE_PATH)."""
    env = env_of("temporal")
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgres" and env["DB_PORT"] == "5432"
    assert env["POSTGRES_USER"] == "temporal" and env["POSTGRES_PWD"].startswith("${TEMPORAL_DB_PASSWORD:?")
    assert env["BIND_ON_IP"] == "0.0.0.0"
    # The membership broadcast address must be an IP; the image's entrypoint finds it when unset.
    if "TEMPORAL_BROADCAST_ADDRESS" in env:
        ipaddress.ip_address(env["TEMPORAL_BROADCAST_ADDRESS"])
    # The image ships no dynamic config file and the server refuses to start without one.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["temporal"]["volumes"]}
    assert (ROOT / mounts[env["DYNAMIC_CONFIG_FILE_PATH"]]).is_file()
    yaml.safe_load((ROOT / mounts[env["DYNAMIC_CONFIG_FILE_PATH"]]).read_text())
    schema = env_of("temporal-schema")
    assert schema["SQL_PLUGIN"] == env["DB"] and schema["SQL_USER"] == env["POSTGRES_USER"]
    assert schema["SQL_HOST"] == env["POSTGRES_SEEDS"] and schema["SQL_PASSWORD"] == env["POSTGRES_PWD"]


def test_temporal_history_shards_are_set_explicitly():
    shards = env_of("temporal")["NUM_HISTORY_SHARDS"]
    assert shards.isdigit(), "a literal: it can never change once the cluster has started"
    assert int(shards) >= 64 and int(shards) & (int(shards) - 1) == 0


def test_mounted_deploy_files_exist_and_scripts_parse():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
                if source.endswith(".sh"):
                    subprocess.run(["sh", "-n", str(ROOT / source)], check=True)
        entry = service.get("entrypoint")
        if entry and entry[0] == "/bin/sh":
            assert any(v.split(":")[1] == entry[1] for v in service["volumes"]), name


def test_search_attributes_registered_in_production_match_the_code():
    script = (ROOT / "deploy" / "temporal-namespace.sh").read_text()
    registered = set(re.findall(r"(Iop\w+)=(\w+)", script))
    kinds = {
        "KEYWORD": "Keyword",
        "DATETIME": "Datetime",
        "TEXT": "Text",
        "INT": "Int",
        "DOUBLE": "Double",
        "BOOL": "Bool",
        "KEYWORD_LIST": "KeywordList",
    }
    assert registered == {(k.name, kinds[k.indexed_value_type.name]) for k in search.ALL}


async def test_the_namespace_script_registers_the_namespace_and_attributes(dev_env):
    """The real script, run twice (it runs on every start), against the Temporal dev server."""
    namespace = unique("ns")
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "IOP_TEMPORAL_NAMESPACE": namespace,
        "PATH": f"{Path(binary('temporal')).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for _ in range(2):
        done = await asyncio.to_thread(
            subprocess.run,
            ["sh", str(ROOT / "deploy" / "temporal-namespace.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {k.name: k.indexed_value_type for k in search.ALL} == {
        name: kind for name, kind in listed.custom_attributes.items() if name.startswith("Iop")
    }


# --- the worker's health check ----------------------------------------------------------------


def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", ROOT / "deploy" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_worker_health_check_sees_this_hosts_pollers(dev_env, task_queue, tmp_path):
    import socket

    health = _healthcheck_module()
    target = dev_env.client.service_client.config.target_host
    host = socket.gethostname()
    assert "poller" in await health.worker_polling(target, "default", task_queue, host)
    engine = make_engine(f"sqlite:///{tmp_path / 'records.db'}")
    async with build_worker(dev_env.client, engine, task_queue):
        for _ in range(50):
            problem = await health.worker_polling(target, "default", task_queue, host)
            if problem is None:
                break
            await asyncio.sleep(0.2)
        assert problem is None
        assert "poller" in await health.worker_polling(target, "default", task_queue, "another-container")
    engine.dispose()


async def test_the_mllp_health_check_sees_a_listener(records_engine, dev_env):
    from ingest.lab import LabIngest
    from ingest.mllp import serve_mllp

    health = _healthcheck_module()
    server = await serve_mllp(
        LabIngest(records_engine, dev_env.client), "127.0.0.1", 0, token_id="unused", allow="127.0.0.1"
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await asyncio.to_thread(health.mllp_listening, port) is None
    server.close()
    await server.wait_closed()
    problem = await asyncio.to_thread(health.mllp_listening, port)
    assert problem and str(port) in problem
