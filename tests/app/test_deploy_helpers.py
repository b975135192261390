"""Fast checks of the deployment helpers: certificates, node keys, config, process cleanup."""

from __future__ import annotations

import ipaddress
import ssl
import sys
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flwr_split.launch.deployment import DeploymentCluster, make_certificates, make_node_keys
from flwr_split.launch.processes import FlowerProcesses, descendants, marked_processes


def test_certificates_chain_to_the_ca_and_name_loopback(tmp_path):
    paths = make_certificates(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.server_cert, paths.server_key)  # key matches certificate
    assert paths.server_key.stat().st_mode & 0o077 == 0


def test_node_keys_are_openssh_p384_pairs(tmp_path):
    private_path, public_path = make_node_keys(tmp_path, "node")
    private = serialization.load_ssh_private_key(private_path.read_bytes(), None)
    public = serialization.load_ssh_public_key(public_path.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(private.curve, ec.SECP384R1)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert public_path.read_text().startswith("ecdsa-sha2-nistp384 ")


def test_cluster_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs tls"):
        DeploymentCluster(tmp_path, 2, node_auth=True)
    with pytest.raises(ValueError, match="num_supernodes"):
        DeploymentCluster(tmp_path, 0)
    cluster = DeploymentCluster(tmp_path, 2, certificates=make_certificates(tmp_path / "c"))
    assert cluster.tls and cluster.port != 0


def test_connection_is_insecure_or_uses_the_ca(tmp_path):
    processes = FlowerProcesses(tmp_path, "deploy")
    processes.write_connection("127.0.0.1:9", insecure=True)
    config = tomllib.loads((tmp_path / "config.toml").read_text())["superlink"]
    assert config == {"default": "deploy", "deploy": {"address": "127.0.0.1:9", "insecure": True}}
    processes.write_connection("127.0.0.1:9", insecure=False, root_certificates=tmp_path / "ca")
    config = tomllib.loads((tmp_path / "config.toml").read_text())["superlink"]["deploy"]
    assert config == {"address": "127.0.0.1:9", "root-certificates": str(tmp_path / "ca")}


def test_stop_ends_children_in_other_sessions_and_orphans(tmp_path):
    # Like a SuperLink: children in new sessions (its SuperExec), and an orphan whose parent
    # already exited (reparented to init, so only the launch id in its environment finds it).
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    script = (
        "import subprocess, sys, time\n"
        f"sleeper = {sleeper!r}\n"
        "subprocess.Popen([sys.executable, '-c', 'import subprocess, sys; "
        "subprocess.Popen(sys.argv[1:])', *sleeper], start_new_session=True)\n"
        "subprocess.Popen(sleeper, start_new_session=True)\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(RuntimeError, match="body failed"):
        with FlowerProcesses(tmp_path, "x", stop_timeout=5) as processes:
            root = processes.start("tree", [sys.executable, "-c", script])

            def orphans() -> set[int]:
                return processes.alive() - {root.pid} - descendants([root.pid])

            processes.wait_until(
                lambda: len(processes.alive()) == 3 and len(orphans()) == 1, 30, "a process tree"
            )
            seen, orphaned = processes.alive(), orphans()
            raise RuntimeError("body failed")
    assert root.pid in seen and len(orphaned) == 1  # the orphan is found by its launch id only
    assert marked_processes(processes.launch_id) == set()
    assert processes.alive() == set()
    assert root.returncode is not None


def test_stop_warns_naming_the_processes_it_could_not_end(tmp_path, monkeypatch):
    import flwr_split.launch.processes as launch

    processes = FlowerProcesses(tmp_path, "x", stop_timeout=0.5)
    sleeper = processes.start("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with monkeypatch.context() as signals_lost:
            signals_lost.setattr(launch, "_signal_all", lambda pids, sig: None)
            signals_lost.setattr(launch.os, "killpg", lambda pgid, sig: None)
            named = rf"still running after SIGKILL: {{{sleeper.pid}: "
            with pytest.warns(UserWarning, match=named):
                processes.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
