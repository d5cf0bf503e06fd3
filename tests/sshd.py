"""A real OpenSSH server on 127.0.0.1 for remote-runner tests, with throwaway host and user keys.

``LocalSshd.start(directory)`` writes an ed25519 host key and user key, an ``authorized_keys`` and a
``known_hosts`` holding the host key, an ``sshd_config`` listening on a free port of 127.0.0.1, and starts
``/usr/sbin/sshd -D -e``; readiness is read from its "Server listening" log line (no sleeps; a thread keeps draining the log). ``stop()`` ends
exactly that process. Tests skip with a reason when ``sshd`` / ``ssh-keygen`` are missing
(Debian: ``apt-get install openssh-server``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def unavailable_reason() -> str | None:
    """Why a local sshd cannot run here, or None."""
    if not Path(SSHD).exists():
        return "OpenSSH server not installed (/usr/sbin/sshd); apt-get install openssh-server"
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "OpenSSH client not installed (ssh, ssh-keygen); apt-get install openssh-client"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecompress-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


@dataclasses.dataclass
class LocalSshd:
    directory: Path
    port: int
    user: str
    identity: Path
    known_hosts: Path
    process: subprocess.Popen

    @property
    def uri(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @classmethod
    def start(cls, directory: Path) -> LocalSshd:
        directory.mkdir(parents=True, exist_ok=True)
        host_key, user_key = directory / "host_ed25519", directory / "user_ed25519"
        _keygen(host_key)
        _keygen(user_key)
        authorized = directory / "authorized_keys"
        authorized.write_text(user_key.with_suffix(".pub").read_text())
        port = _free_port()
        known_hosts = directory / "known_hosts"
        host_pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
        config = directory / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized}", "StrictModes no", "UsePAM no", f"PidFile {directory / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "LogLevel INFO", "MaxStartups 50", "MaxSessions 50", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        server = cls(directory, port, getpass.getuser(), user_key, known_hosts, process)
        server._wait_listening(timeout=20.0)
        return server

    def _wait_listening(self, timeout: float) -> None:
        # A reader thread keeps draining sshd's log so the pipe never fills and blocks the server.
        listening = threading.Event()
        self.log: list[str] = []

        def drain() -> None:
            for raw in self.process.stderr:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                if "Server listening" in line:
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"sshd did not start: {''.join(self.log)[-500:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr:
            with contextlib.suppress(OSError):
                self.process.stderr.close()
