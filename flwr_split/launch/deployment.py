"""A real Flower deployment on loopback: one ``flower-superlink`` and N ``flower-supernode``s.

`DeploymentCluster` starts the SuperLink (deployment runtime, not
``--simulation``) and the SuperNodes on free 127.0.0.1 ports, SuperNode ``i``
with ``--node-config "partition-id=i num-partitions=N"``, waits until every
SuperNode has connected, writes the ``config.toml`` connection and runs the
App with ``flwr run``. On exit it stops every process it started and
everything those spawned (SuperExecs, ``flwr-serverapp``, ``flwr-clientapp``),
see `flwr_split.launch.processes.FlowerProcesses`.

Options: ``tls`` (a CA and a server certificate for 127.0.0.1/localhost made
by `make_certificates`) and ``node_auth`` (SuperNode authentication: EC key
pairs made by `make_node_keys`, public keys registered with
``flwr supernode register`` before the SuperNodes start; needs TLS).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flwr_split.launch.processes import FlowerProcesses, _executable, free_port, superlink_command

NODE_ID_PATTERN = re.compile(r"SuperNode ID: (\d+)")
"""What a SuperNode logs once it is registered and activated at the SuperLink."""


@dataclass(frozen=True)
class Certificates:
    """PEM files of a private CA and a server certificate signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_certificates(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 30
) -> Certificates:
    """Write ``ca.crt``, ``server.pem`` and ``server.key`` (EC P-256) into ``folder``.

    The server certificate is valid for ``hosts`` (IP addresses and DNS names
    as subject alternative names) and signed by the new CA.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flwr-split test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    paths = Certificates(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, paths.server_key)
    return paths


def make_node_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """Write a SuperNode key pair (EC P-384, OpenSSH format): ``<name>`` and ``<name>.pub``.

    The same files as ``ssh-keygen -t ecdsa -b 384 -N "" -f <name>``; Flower
    wants the private key for ``flower-supernode --auth-supernode-private-key``
    and the public key for ``flwr supernode register``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return private, public


class DeploymentCluster(FlowerProcesses):
    """``flower-superlink`` plus ``num_supernodes`` ``flower-supernode``s on 127.0.0.1.

    Use as a context manager; `run` runs the App on the cluster, and any
    number of runs may share one cluster (each ``flwr run`` is a new run with
    a fresh ``context.state`` on every node).

    Parameters
    ----------
    flwr_home : Path
        ``FLWR_HOME`` of the ``flwr`` CLI; holds ``config.toml``, the logs
        (``superlink.log``, ``supernode-<i>.log``), the SuperLink's and each
        SuperNode's own ``FLWR_HOME`` (``superlink/``, ``supernode-<i>/``,
        where each installs the App), and ``certs/`` and ``keys/`` if used.
    num_supernodes : int (default: 2)
        SuperNode ``i`` gets ``partition-id=i num-partitions=num_supernodes``.
    tls : bool (default: False)
        Serve the SuperLink over HTTPS with a private CA made by
        `make_certificates`; SuperNodes and the CLI verify it with
        ``--root-certificates`` / ``root-certificates``.
    certificates : Certificates or None (default: None)
        Use these instead of making new ones (implies ``tls``).
    node_auth : bool (default: False)
        Enable SuperNode authentication: only SuperNodes whose public key was
        registered with ``flwr supernode register`` may connect. Needs ``tls``.
    connection : str (default: "deploy")
        Name of the SuperLink connection in ``config.toml``.
    task_poll_interval : float or None (default: 0.1)
        ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL`` (seconds) of every SuperExec;
        None keeps Flower's default of 1 s.
    startup_timeout : float (default: 120.0)
        Seconds to wait for the SuperLink to be healthy and every SuperNode
        to connect.
    """

    def __init__(
        self,
        flwr_home: Path,
        num_supernodes: int = 2,
        *,
        tls: bool = False,
        certificates: Certificates | None = None,
        node_auth: bool = False,
        connection: str = "deploy",
        task_poll_interval: float | None = 0.1,
        startup_timeout: float = 120.0,
    ) -> None:
        if num_supernodes < 1:
            raise ValueError("num_supernodes must be >= 1")
        tls = tls or certificates is not None
        if node_auth and not tls:
            raise ValueError("node_auth needs tls: Flower refuses SuperNode auth without TLS")
        super().__init__(flwr_home, connection)
        self.num_supernodes = num_supernodes
        self.tls = tls
        self.node_auth = node_auth
        self.startup_timeout = startup_timeout
        if task_poll_interval is not None:
            self.env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = str(task_poll_interval)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.certificates = certificates
        self.node_keys: list[tuple[Path, Path]] = []
        self.registered_ids: list[int] = []
        """Node ids the SuperLink gave the registered public keys (with ``node_auth``)."""
        self.node_ids: list[int] = []
        """Node id of SuperNode ``i`` (partition ``i``), known once the cluster is up."""

    @property
    def log_path(self) -> Path:
        """The SuperLink's log."""
        return self.flwr_home / "superlink.log"

    def supernode_log(self, index: int) -> Path:
        """Return the log of SuperNode ``index``."""
        return self.flwr_home / f"supernode-{index}.log"

    def __enter__(self) -> DeploymentCluster:
        try:
            self._start_superlink()
            if self.node_auth:
                self._register_nodes()
            for index in range(self.num_supernodes):
                self._start_supernode(index)
            self.wait_until(self._all_connected, self.startup_timeout, "connected SuperNodes")
        except BaseException:
            self.stop()
            raise
        return self

    # -------------------------------------------------------------- start-up
    def _tls_args(self) -> list[str]:
        if self.certificates is None:
            return ["--insecure"]
        return [
            "--ssl-certfile",
            str(self.certificates.server_cert),
            "--ssl-keyfile",
            str(self.certificates.server_key),
            "--ssl-ca-certfile",
            str(self.certificates.ca_cert),
        ]

    def _start_superlink(self) -> None:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        if self.tls and self.certificates is None:
            self.certificates = make_certificates(self.flwr_home / "certs")
        auth = ["--enable-supernode-auth"] if self.node_auth else []
        command = superlink_command(self.port, *self._tls_args(), *auth)
        self._start_with_home("superlink", command)
        cafile = self.certificates.ca_cert if self.certificates else None
        self.write_connection(self.address, insecure=not self.tls, root_certificates=cafile)
        self.wait_healthy(self.port, self.startup_timeout, cafile=cafile)

    def _register_nodes(self) -> None:
        """Make a key pair per SuperNode and register its public key with the SuperLink."""
        for index in range(self.num_supernodes):
            private, public = make_node_keys(self.flwr_home / "keys", f"supernode-{index}")
            done = self.flwr(
                ["supernode", "register", str(public), self.connection, "--format", "json"],
                timeout=self.startup_timeout,
                check=True,
            )
            # JSON mode exits 0 even on failure; the answer says {"success": false, ...}.
            text = done.stdout
            answer = json.loads(text[text.index("{") :]) if "{" in text else {}
            if not answer.get("success"):
                raise RuntimeError(f"flwr supernode register failed: {text}{done.stderr}")
            self.registered_ids.append(int(answer["node-id"]))
            self.node_keys.append((private, public))

    def _start_supernode(self, index: int) -> None:
        command = [_executable("flower-supernode")]
        if self.certificates is None:
            command.append("--insecure")
        else:
            command += ["--root-certificates", str(self.certificates.ca_cert)]
        command += [
            "--superlink",
            self.address,
            "--port",
            str(free_port()),
            "--node-config",
            f"partition-id={index} num-partitions={self.num_supernodes}",
        ]
        if self.node_auth:
            command += ["--auth-supernode-private-key", str(self.node_keys[index][0])]
        self._start_with_home(f"supernode-{index}", command)

    def _start_with_home(self, name: str, command: list[str]) -> None:
        """Start a SuperLink/SuperNode with its own ``FLWR_HOME``, as on its own machine.

        Each ClientApp process installs the App into ``$FLWR_HOME/apps`` on
        its first message, and that install is not atomic: SuperNodes sharing
        one home could import a half-copied App.
        """
        home = self.flwr_home / name
        home.mkdir(parents=True, exist_ok=True)
        self.start(name, command, env={"FLWR_HOME": str(home)}, cwd=home)

    def _all_connected(self) -> bool:
        ids = []
        for index in range(self.num_supernodes):
            match = NODE_ID_PATTERN.search(self.read_log(f"supernode-{index}"))
            if match is None:
                return False
            ids.append(int(match.group(1)))
        self.node_ids = ids
        return True

    # ------------------------------------------------------------------ runs
    def run(
        self,
        app_dir: Path,
        run_config: Mapping[str, object],
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flwr run APP <connection> --stream --run-config ...`` and return it.

        Parameters
        ----------
        app_dir : Path
            Folder of the Flower App (holds ``pyproject.toml``).
        run_config : Mapping[str, object]
            ``--run-config`` overrides; pass ``min-nodes`` = ``num_supernodes``
            and an absolute ``output-dir``.
        timeout : float or None
            Seconds before the ``flwr run`` CLI is killed.
        on_line : Callable[[str], None] or None
            Takes each line of the output as ``flwr run`` prints it (then
            ``stdout`` holds stdout and stderr together).
        """
        return self.flwr_run(app_dir, run_config, timeout=timeout, on_line=on_line)
