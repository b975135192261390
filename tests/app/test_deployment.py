"""The App on a real deployment: ``flower-superlink`` + ``flower-supernode``s on 127.0.0.1.

Each deployment round trip costs seconds (a new ``flwr-clientapp`` process per
message), so each fixture starts one cluster, runs one short job and gathers
everything the tests look at (results, logs, probes) before it stops the
cluster; the tests then only read that evidence. The insecure tests read the
honest run of the deployment they share with ``test_corrupt_supernode.py``
(``shared_deployment``). Every cluster must leave no process behind
(`_no_process_left`, checked after each test).
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import tomllib
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from flwr_split.client.app import app as client_app
from flwr_split.launch.deployment import DeploymentCluster, make_certificates, make_node_keys
from flwr_split.launch.processes import (
    _executable,
    command_line,
    descendants,
    free_port,
    marked_processes,
    toml_overrides,
)
from flwr_split.options import RunSettings
from flwr_split.testing.inprocess import InProcessGrid
from flwr_split.wire import MSG_EVAL, MSG_HELLO, MSG_STEP
from strategies.parallel import ParallelSplitLearning
from tests.app.deployment_runs import HONEST_NODES, HONEST_STEPS, ROOT, RUN_TIMEOUT, Evidence

JOB = {"epochs": 1, "max-steps": 2, "eval-every": 2, "batch-size": 8, "run-name": "deploy"}
"""A short SL job: hello, steps 0 and 1, the epoch's sync and one evaluation."""

pytestmark = pytest.mark.slow

_LAUNCH_IDS: list[str] = []
"""Launch ids of every cluster the tests of this module started and stopped."""


@pytest.fixture(autouse=True)
def _no_process_left():
    yield
    for launch_id in _LAUNCH_IDS:
        assert not marked_processes(launch_id), f"processes of cluster {launch_id} still alive"


def _registered(cluster: DeploymentCluster) -> DeploymentCluster:
    """Note the cluster's launch id so that `_no_process_left` checks it after every test."""
    _LAUNCH_IDS.append(cluster.launch_id)
    return cluster


def _run_job(cluster: DeploymentCluster, run_config: dict[str, object]) -> Evidence:
    done = cluster.run(ROOT, run_config, timeout=RUN_TIMEOUT)
    evidence = Evidence(cluster, run_config, done)
    evidence.started_pids = cluster.alive()
    return evidence


def _finish(evidence: Evidence) -> Evidence:
    """Read the logs and check what is left once the cluster has stopped."""
    evidence.left_after_stop = marked_processes(evidence.cluster.launch_id)
    evidence.read_logs()
    return evidence


def _received(log: str) -> list[tuple[str | None, str]]:
    """Return ``(group id, message type)`` of every message a SuperNode log says it received."""
    group: str | None = None
    received = []
    for line in log.splitlines():
        if header := re.search(r"\[RUN \d+(?:, ROUND ([^\]]*))?\]", line):
            group = header.group(1)
        elif message := re.search(r"Receiving: (\S+) message", line):
            received.append((group, message.group(1)))
    return received


def _assert_run_ok(evidence: Evidence, steps: list[int]) -> pd.DataFrame:
    done = evidence.done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final test accuracy" in done.stdout, done.stdout + done.stderr
    history = pd.read_csv(evidence.out / "deploy.csv")
    assert list(history["step"]) == steps
    assert (history["num_clients"] == evidence.cluster.num_supernodes).all()
    assert (history["rejected"] == 0).all()
    assert (evidence.out / "deploy_traffic.csv").stat().st_size > 0
    return history


def _app_run_config(overrides: dict[str, object]) -> dict[str, object]:
    """The run config the ServerApp sees: pyproject's ``[tool.flwr.app.config]`` + overrides."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        defaults = tomllib.load(handle)["tool"]["flwr"]["app"]["config"]
    return {**defaults, **overrides}


def _start_flwr_run(
    cluster: DeploymentCluster, run_config: dict[str, object]
) -> subprocess.Popen[bytes]:
    """Start ``flwr run`` on the cluster in the background (logged as ``flwr-run``)."""
    command = [_executable("flwr"), "run", str(ROOT), cluster.connection, "--stream"]
    return cluster.start("flwr-run", [*command, "--run-config", toml_overrides(run_config)])


# --------------------------------------------------------------------------- insecure
@pytest.fixture(scope="module")
def insecure(shared_deployment) -> Evidence:
    """The honest run of the shared deployment (`HONEST_NODES` nodes, `HONEST_STEPS` steps)."""
    honest = shared_deployment[0]
    _registered(honest.cluster)
    return honest


def test_insecure_deployment_writes_the_results(insecure):
    _assert_run_ok(insecure, [HONEST_STEPS])
    assert len(set(insecure.cluster.node_ids)) == HONEST_NODES
    # SuperLink and the SuperNodes, each with its SuperExec, were up after the run; none is now.
    assert len(insecure.started_pids) >= 2 * (1 + HONEST_NODES)
    assert insecure.left_after_stop == set()


def test_deployment_costs_one_round_trip_per_client_and_step(insecure):
    # Every SuperNode logs each message it pulls, under the message's group id (= SL step).
    last = str(HONEST_STEPS)
    expected = [
        (None, MSG_HELLO),
        ("0", MSG_STEP),  # forward of step 0
        # steps 1.. : gradient of the step before + forward of this step
        *((str(step), MSG_STEP) for step in range(1, HONEST_STEPS)),
        (last, MSG_STEP),  # end of the run: the last step's gradient, bottom returned for FedAvg
        (last, MSG_EVAL),
    ]
    for log in insecure.supernode_logs:
        assert _received(log) == expected
        assert log.count("Sending: ") == len(expected)
        assert log.count("Start `flwr-clientapp` process") == len(expected)
    # The SuperLink got one reply per message from every node.
    pushes = Counter(re.findall(r"Push replies from node_id=(\d+)", insecure.superlink_log))
    assert pushes == {str(node): len(expected) for node in insecure.cluster.node_ids}
    # The server booked the same exchanges: hello, two training steps, sync, evaluation.
    traffic = pd.read_csv(insecure.out / "deploy_traffic.csv")
    messages = traffic[traffic["kind"] == "message"]
    assert sorted(set(zip(messages["step"], messages["phase"], strict=True))) == [
        (0, "hello"),
        *((step, "train") for step in range(HONEST_STEPS)),
        (HONEST_STEPS, "eval"),
        (HONEST_STEPS, "sync"),
    ]


def test_deployment_matches_the_inprocess_grid(insecure):
    deployed = pd.read_csv(insecure.out / "deploy.csv")
    settings = RunSettings.from_run_config(_app_run_config(insecure.run_config))
    strategy = ParallelSplitLearning(
        settings.task, optimizer=settings.optimizer, **settings.strategy
    )
    local = strategy.start(
        InProcessGrid(client_app, HONEST_NODES),
        num_epochs=settings.epochs,
        max_steps=settings.max_steps,
    ).history
    assert list(deployed["step"]) == list(local["step"])
    for column in ("bytes_up", "bytes_down", "activation_bytes", "gradient_bytes"):
        assert list(deployed[column]) == list(local[column]), column
    for column in ("eval_samples", "rejected", "num_clients"):
        assert list(deployed[column]) == list(local[column]), column
    # Each message runs in a fresh process with torch's default threads: float sums may differ.
    for column in ("accuracy", "loss", "train_loss"):
        assert deployed[column].to_numpy() == pytest.approx(local[column].to_numpy(), abs=1e-4), (
            column
        )


# ---------------------------------------------------------------- TLS and node auth
def _https_probes(port: int, ca_cert: Path) -> dict[str, str]:
    """Try the health endpoint with our CA, without it, and over plain HTTP."""
    results = {}
    attempts = {
        "our CA": (f"https://127.0.0.1:{port}/health", ssl.create_default_context(cafile=ca_cert)),
        "system CAs": (f"https://127.0.0.1:{port}/health", ssl.create_default_context()),
        "plain HTTP": (f"http://127.0.0.1:{port}/health", None),
    }
    for name, (url, context) in attempts.items():
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                results[name] = f"ok {response.status}"
        except Exception as exc:  # any failure (TLS, protocol, connection) counts as refused
            results[name] = f"refused: {exc}"
    return results


@pytest.fixture(scope="module")
def secure(tmp_path_factory) -> Evidence:
    base = tmp_path_factory.mktemp("secure")
    certificates = make_certificates(base / "test-ca")
    run_config = {
        **JOB,
        "max-steps": 1,
        "eval-every": 1,
        "min-nodes": 2,
        "output-dir": str(base / "out"),
    }
    cluster = _registered(
        DeploymentCluster(base / "flwr-home", 2, certificates=certificates, node_auth=True)
    )
    with cluster:
        evidence = _run_job(cluster, run_config)
        evidence.extra["probes"] = _https_probes(cluster.port, certificates.ca_cert)
        listed = cluster.flwr(["supernode", "ls", "--format", "json"], timeout=120)
        evidence.extra["listed"] = listed.stdout + listed.stderr
        # A SuperNode with a key the SuperLink does not know must be turned away.
        private, _ = make_node_keys(base / "intruder", "intruder")
        intruder = cluster.start(
            "intruder",
            [
                _executable("flower-supernode"),
                "--root-certificates",
                str(certificates.ca_cert),
                "--superlink",
                cluster.address,
                "--port",
                str(free_port()),
                "--auth-supernode-private-key",
                str(private),
                "--max-retries",
                "1",
            ],
        )
        try:
            evidence.extra["intruder_exit"] = intruder.wait(timeout=120)
        except subprocess.TimeoutExpired:
            evidence.extra["intruder_exit"] = None
        evidence.extra["intruder_log"] = cluster.read_log("intruder")
    return _finish(evidence)


def test_tls_deployment_runs_with_certificates_made_by_the_test(secure):
    _assert_run_ok(secure, [1])
    probes = secure.extra["probes"]
    assert probes["our CA"] == "ok 200"
    assert "CERTIFICATE_VERIFY_FAILED" in probes["system CAs"]
    assert probes["plain HTTP"].startswith("refused")
    config = (secure.cluster.flwr_home / "config.toml").read_text()
    assert "root-certificates" in config and "insecure" not in config
    for log in secure.supernode_logs:
        assert _received(log)[-1] == ("1", MSG_EVAL)
    assert secure.left_after_stop == set()


def test_node_auth_admits_registered_supernodes_only(secure):
    cluster = secure.cluster
    assert len(cluster.registered_ids) == 2
    assert cluster.node_ids == cluster.registered_ids  # SuperNode i got registered key i's id
    listed = secure.extra["listed"]
    nodes = json.loads(listed[listed.index("{") :])["nodes"]
    assert {int(n["node-id"]) for n in nodes} == set(cluster.registered_ids)
    assert {n["status"] for n in nodes} == {"online"}
    assert "--enable-supernode-auth" in cluster.commands["superlink"]
    assert secure.extra["intruder_exit"] not in (None, 0)
    assert "Failed to activate SuperNode" in secure.extra["intruder_log"]
    assert "SuperNode ID" not in secure.extra["intruder_log"]


# ------------------------------------------------------------------ cleanup on error
def test_everything_is_stopped_when_the_body_raises_mid_run(tmp_path):
    run_config = {**JOB, "max-steps": 50, "min-nodes": 1, "output-dir": str(tmp_path / "out")}
    seen: dict[int, str] = {}
    with pytest.raises(RuntimeError, match="boom"):
        with _registered(DeploymentCluster(tmp_path / "flwr-home", 1)) as cluster:
            _start_flwr_run(cluster, run_config)

            def clientapp_running() -> bool:
                # A process caught mid-exec or exiting has an empty command line; it cannot
                # be told apart later from a gone pid (also ""), so it is not recorded.
                now = {pid: command_line(pid) for pid in cluster.alive()}
                seen.update({pid: cmd for pid, cmd in now.items() if cmd})
                return any("flwr-clientapp" in cmd for cmd in seen.values())

            cluster.wait_until(clientapp_running, 300, "a running flwr-clientapp")
            raise RuntimeError("boom")
    names = " ".join(seen.values())
    for name in ("flower-superlink", "flower-supernode", "flower-superexec", "flwr-serverapp"):
        assert name in names
    assert marked_processes(cluster.launch_id) == set()
    left = {pid: cmd for pid, cmd in seen.items() if command_line(pid) == cmd}
    assert not left, f"still running after the cluster stopped: {left}"


# ----------------------------------------------------------------- a SuperNode dies
KILLED_NODES = 2
"""SuperNodes of the `killed` cluster; the last one dies, the others go on."""
VICTIM = KILLED_NODES - 1


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Evidence:
    """Kill the last SuperNode (and its SuperExec) while it works on step 1; let the run go on."""
    base = tmp_path_factory.mktemp("killed")
    run_config = {
        **JOB,
        "min-nodes": KILLED_NODES,
        "step-timeout": 120.0,
        "output-dir": str(base / "out"),
    }
    cluster = _registered(DeploymentCluster(base / "flwr-home", KILLED_NODES))
    with cluster:
        run = _start_flwr_run(cluster, run_config)

        def working_on_step_1() -> bool:
            # The server sends step 1 only once every step-0 reply has arrived in full.
            return ("1", MSG_STEP) in _received(cluster.read_log(f"supernode-{VICTIM}"))

        cluster.wait_until(working_on_step_1, 600, f"step 1 at SuperNode {VICTIM}")
        victim = cluster.processes[f"supernode-{VICTIM}"]
        doomed = {victim.pid} | descendants([victim.pid])
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        victim.wait(timeout=30)
        exit_code = run.wait(timeout=RUN_TIMEOUT)
        evidence = Evidence(
            cluster,
            run_config,
            subprocess.CompletedProcess(run.args, exit_code, cluster.read_log("flwr-run"), ""),
        )
        evidence.extra["killed_alive"] = {pid for pid in doomed if command_line(pid)}
    return _finish(evidence)


def test_a_killed_supernode_costs_only_its_contribution(killed):
    done = killed.done
    assert done.returncode == 0, done.stdout
    assert "final test accuracy" in done.stdout
    assert killed.extra["killed_alive"] == set()
    history = pd.read_csv(killed.out / "deploy.csv")
    drops = re.findall(r"step (\d+): dropping partition (\d+) \(node \d+\): (.*)", done.stdout)
    # The victim's partition missed step 1 and the evaluation; its bottom never applied a
    # gradient, so the epoch's FedAvg does not ask it for weights. Nobody else missed anything.
    assert [(int(step), int(part)) for step, part, _ in drops] == [(1, VICTIM), (2, VICTIM)], drops
    assert all("Node Unavailable" in why or "step timeout" in why for *_, why in drops)
    assert list(history["step"]) == [2] and history["rejected"].iloc[-1] == 2
    traffic = pd.read_csv(killed.out / "deploy_traffic.csv")
    acts = traffic[(traffic["kind"] == "activations") & (traffic["phase"] == "train")]
    per_step = acts.groupby("step")["nbytes"].sum()
    assert list(per_step.index) == [0, 1]  # every node in step 0, all but the victim in step 1
    assert per_step[1] * KILLED_NODES == per_step[0] * (KILLED_NODES - 1)
    # The living clients still trained and were evaluated.
    assert history["eval_samples"].iloc[-1] > 0 and history["accuracy"].notna().all()
    assert killed.left_after_stop == set()
