"""Measure latency on a Linux board (Raspberry Pi, any SBC) over ssh with the system OpenSSH client.

``SshRunner("ssh://pi@raspberrypi.local")`` makes a private temporary directory on the device (``mktemp -d``),
uploads the model and ``bench_script.py`` (standard library + numpy + whichever TFLite interpreter the device
has), runs it with the device's Python, reads one JSON line back, and removes the directory again, also when the
run fails, hangs or the connection drops.

Security: host keys are verified against a known_hosts file (``StrictHostKeyChecking=yes``); accepting an
unknown key needs ``accept_new_host_key=True`` (``accept-new``: a *changed* key is still refused). Only the
system ``ssh`` binary runs, with an argument list (no local shell). Files are uploaded with ``cat > FILE`` over
ssh rather than ``scp`` because scp's remote-path handling differs between its legacy (remote shell) and SFTP
modes; here every remote word is passed through ``shlex.quote`` and the remote file names are fixed
(``model.tflite``), so nothing from the user's local path reaches the remote shell. The remote interpreter path
is quoted too. A run that exceeds ``timeout`` is stopped: the local ssh is killed and the remote process (its
pid is recorded in the temporary directory) is killed by the cleanup command.

Example:
    >>> runner = SshRunner("ssh://pi@192.168.1.20", identity="~/.ssh/id_ed25519")  # doctest: +SKIP
    >>> runner.measure("model_int8.tflite", runs=50, warmup=5, threads=4).timings.median_ms  # doctest: +SKIP
    21.7
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import RemoteError, ToolchainError
from edgecompress.runtimes.device import parse_ssh_uri
from edgecompress.runtimes.runner import Measurement, Timings

# the runner returns one time per run: more than bench ever asks for is not its answer
MAX_SAMPLES = 100_000
MARKER = "EDGECOMPRESS_BENCH_JSON "
# a reply longer than this is not the runner's (its JSON line holds at most MAX_SAMPLES numbers, ~2 MB): the
# output is read in chunks and the command is stopped past the cap, so a flooding device cannot fill our RAM
MAX_REPLY_BYTES = 16 << 20
MAX_STDERR_BYTES = 1 << 20
_CHUNK = 1 << 16
_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")


def _bench_script() -> bytes:
    return (resources.files("edgecompress.runtimes") / "bench_script.py").read_bytes()


class SshRunner:
    """Run ``bench_script.py`` on a Linux device over ssh (the ``Runner`` interface).

    Args:
        uri: ``ssh://user@host[:port]``.
        identity: private key file (``ssh -i``); None uses the ssh agent / default keys.
        known_hosts: the known_hosts file that must hold the device's host key; None uses ssh's defaults
            (``~/.ssh/known_hosts``).
        remote_python: the device's Python (a command name or path; default ``python3``).
        accept_new_host_key: accept and record a host key seen for the first time (never a changed one).
        connect_timeout: seconds to establish the connection.
        timeout: seconds the whole benchmark may take on the device.
        ssh: the ssh client binary (default: ``ssh`` on PATH).
    """

    def __init__(self, uri: str, *, identity: str | os.PathLike[str] | None = None,
                 known_hosts: str | os.PathLike[str] | None = None, remote_python: str = "python3",
                 accept_new_host_key: bool = False, connect_timeout: float = 10.0, timeout: float = 300.0,
                 ssh: str | None = None) -> None:
        self.address = parse_ssh_uri(uri)
        self.device = str(self.address)
        self.identity = Path(identity).expanduser() if identity else None
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else None
        if self.identity is not None and not self.identity.is_file():
            raise RemoteError(f"expected --identity to be a private key file. Received: {str(self.identity)!r} "
                              "(not found). Pass the path of the key the device accepts.")
        if self.known_hosts is not None and not self.known_hosts.is_file() and not accept_new_host_key:
            raise RemoteError(f"expected --known-hosts to be a known_hosts file. Received: "
                              f"{str(self.known_hosts)!r} (not found). Create it with `ssh-keyscan` after checking "
                              "the fingerprint, or pass --accept-new-host-key.")
        if not remote_python or "\n" in remote_python or "\0" in remote_python:
            raise RemoteError(f"expected --remote-python to be a command or path. Received: {remote_python!r}. "
                              "Pass e.g. python3 or /usr/bin/python3.")
        self.remote_python = remote_python
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.ssh = ssh or shutil.which("ssh")
        if not self.ssh:
            raise ToolchainError("ssh is not installed: expected the OpenSSH client `ssh` on PATH. "
                                 "Install it (Debian: apt-get install openssh-client).")

    # ------------------------------------------------------------------------------------------- ssh calls

    def _ssh_args(self) -> list[str]:
        args = [self.ssh, "-p", str(self.address.port), "-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new_host_key else 'yes'}",
                "-o", f"ConnectTimeout={int(max(1, self.connect_timeout))}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity is not None:
            args += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return args + ["--", self.address.destination]

    def _call(self, remote_command: str, *, timeout: float, stdin: bytes | None = None, what: str,
              max_stdout: int = MAX_REPLY_BYTES) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = run_bounded([*self._ssh_args(), remote_command], stdin=stdin, timeout=timeout,
                               max_stdout=max_stdout, max_stderr=MAX_STDERR_BYTES)
        except OutputCapExceeded as exc:
            raise RemoteError(f"{self.device}: expected at most {exc.cap} bytes on {exc.stream} from {what}. "
                              f"Received: more, so the command was stopped. The device's runner is not the one "
                              "edgecompress uploaded, or something on the device prints without end; check "
                              "--remote-python and the device's shell startup files.") from exc
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{self.device}: expected {what} to finish within {timeout:g} s. Received: no "
                              "answer (the device is slow, hung or unreachable). Check the device, or raise "
                              "--timeout.") from exc
        except OSError as exc:
            raise ToolchainError(f"ssh could not be started ({exc.strerror}). Install the OpenSSH client.") from exc
        if proc.returncode == 255:
            raise RemoteError(self._connection_message(proc.stderr.decode("utf-8", "replace"), what))
        return proc

    def _connection_message(self, stderr: str, what: str) -> str:
        last = " ".join(line.strip() for line in stderr.strip().splitlines()[-2:])[:300] or "no message"
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr \
                or "No ED25519 host key is known" in stderr or "host key" in stderr.lower():
            where = f"in {self.known_hosts}" if self.known_hosts else "in ~/.ssh/known_hosts"
            return (f"{self.device}: expected the device's host key {where}. Received: {last}. Verify the "
                    "fingerprint and add it (ssh-keyscan), or pass --accept-new-host-key to trust a first-seen key.")
        if "Permission denied" in stderr:
            return (f"{self.device}: expected key authentication to succeed. Received: {last}. Pass --identity "
                    "with a key in the device's authorized_keys.")
        return (f"{self.device}: expected {what} over ssh. Received: the connection failed or dropped ({last}). "
                "Check that the device is up and reachable, then retry.")

    # ------------------------------------------------------------------------------------------- the runner

    def measure(self, model: str | os.PathLike[str], *, runs: int = 50, warmup: int = 5,
                threads: int | None = None) -> Measurement:
        """Upload ``model`` and the runner script, time it on the device, clean up, return the measurement.

        Args:
            model: a local ``.tflite`` path (any name; it is uploaded as ``model.tflite``).
            runs / warmup: timed and untimed invocations.
            threads: interpreter threads on the device (None: the runtime's default).

        Returns:
            The ``Measurement`` (``device="ssh://..."``).

        Example:
            >>> SshRunner("ssh://pi@pi5").measure("m.tflite", runs=20, warmup=2, threads=4)  # doctest: +SKIP
        """
        return self.measure_many([model], runs=runs, warmup=warmup, threads=threads)[0]

    def measure_many(self, models: list[str | os.PathLike[str]], *, runs: int = 50, warmup: int = 5,
                     threads: int | None = None) -> list[Measurement]:
        """Measure several models in one remote session (e.g. float32 and int8 side by side)."""
        payloads = []
        for model in models:
            try:
                payloads.append((Path(model).name, Path(model).read_bytes()))
            except OSError as exc:
                raise RemoteError(f"{model}: expected a readable .tflite file. Received: {exc.strerror}. "
                                  "Check the path.") from exc
        remote_dir = self._make_remote_dir()
        try:
            self._upload(remote_dir, "bench_script.py", _bench_script())
            results = []
            for i, (name, data) in enumerate(payloads):
                remote_model = f"model{i}.tflite" if i else "model.tflite"
                self._upload(remote_dir, remote_model, data)
                payload = self._run_script(remote_dir, remote_model, runs=runs, warmup=warmup, threads=threads)
                results.append(self._measurement(name, payload, threads))
        except BaseException:
            self._cleanup(remote_dir)  # the original error says more than a failed cleanup would
            raise
        problem = self._cleanup(remote_dir)
        if problem:
            for measurement in results:
                measurement.notes.append(problem)
        return results

    def run_samples(self, model: str | os.PathLike[str] | bytes, inputs: list[np.ndarray], *,
                    threads: int | None = None) -> tuple[list[np.ndarray], Measurement]:
        """Run real samples through ``model`` on the device and bring the raw outputs back.

        Args:
            model: the ``.tflite`` (a path or the bytes).
            inputs: one array per model input, samples along the first axis, already in the input dtype.
            threads: interpreter threads on the device.

        Returns:
            ``(outputs, measurement)``: one array per model output (samples first, stored dtype), and the
            per-sample invoke times as a ``Measurement``.
        """
        data = bytes(model) if isinstance(model, bytes | bytearray) else Path(model).read_bytes()
        buffer = io.BytesIO()
        np.savez(buffer, **{f"in{i}": np.ascontiguousarray(arr) for i, arr in enumerate(inputs)})
        expected = sum(arr.nbytes for arr in inputs)
        remote_dir = self._make_remote_dir()
        try:
            self._upload(remote_dir, "bench_script.py", _bench_script())
            self._upload(remote_dir, "model.tflite", data)
            self._upload(remote_dir, "inputs.npz", buffer.getvalue())
            payload = self._run_script(remote_dir, "model.tflite", runs=1, warmup=0, threads=threads,
                                       extra=["--eval", f"{remote_dir}/inputs.npz", "--save",
                                              f"{remote_dir}/outputs.npz"])
            outputs = self._download_outputs(remote_dir, count=len(inputs[0]), limit=64 * expected + (16 << 20))
        except BaseException:
            self._cleanup(remote_dir)
            raise
        measurement = self._measurement("model.tflite", payload, threads)
        problem = self._cleanup(remote_dir)
        if problem:
            measurement.notes.append(problem)
        return outputs, measurement

    def _download_outputs(self, remote_dir: str, *, count: int, limit: int) -> list[np.ndarray]:
        """Read ``outputs.npz`` back (``cat`` over ssh) and check it before trusting it: size, members, shapes."""
        path = shlex.quote(f"{remote_dir}/outputs.npz")
        proc = self._call(f"cat {path}", timeout=self.connect_timeout + 30 + limit / 1e6,
                          what="the download of the outputs", max_stdout=limit)
        if proc.returncode != 0 or not proc.stdout:
            raise RemoteError(f"{self.device}: expected the runner's outputs file. Received: exit {proc.returncode} "
                              f"({proc.stderr.decode('utf-8', 'replace').strip()[:200]}). Check free space on the "
                              "device.")
        if len(proc.stdout) > limit:
            raise RemoteError(f"{self.device}: expected at most {limit} bytes of outputs. Received: "
                              f"{len(proc.stdout)}. The device's runner is not the one edgecompress uploaded.")
        try:
            with zipfile.ZipFile(io.BytesIO(proc.stdout)) as archive:
                members = archive.infolist()
                if len(members) > 64 or sum(m.file_size for m in members) > limit:
                    raise RemoteError(f"{self.device}: expected a small outputs archive. Received: "
                                      f"{len(members)} members declaring {sum(m.file_size for m in members)} bytes.")
            with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as archive:
                outputs = [archive[f"out{j}"] for j in range(len(archive.files))]
        except RemoteError:
            raise
        except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as exc:
            raise RemoteError(f"{self.device}: expected an .npz of outputs from the runner. Received: unreadable "
                              f"data ({str(exc)[:200]}). Check the device's Python and numpy.") from exc
        if not outputs or any(len(out) != count for out in outputs):
            raise RemoteError(f"{self.device}: expected {count} samples per output. Received: "
                              f"{[len(out) for out in outputs]}. Check the device's runner.")
        return outputs

    def _make_remote_dir(self) -> str:
        command = 'mktemp -d "${TMPDIR:-/tmp}/edgecompress-bench.XXXXXXXX"'
        proc = self._call(command, timeout=self.connect_timeout + 20, what="a temporary directory")
        remote_dir = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode != 0 or not _REMOTE_DIR.match(remote_dir):
            err = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise RemoteError(f"{self.device}: expected `mktemp -d` to print a directory. Received: exit "
                              f"{proc.returncode}, {remote_dir[:100]!r} {err}. Check that /tmp is writable.")
        return remote_dir

    def _upload(self, remote_dir: str, name: str, data: bytes) -> None:
        path = shlex.quote(f"{remote_dir}/{name}")
        timeout = self.connect_timeout + 30 + len(data) / 1e6  # >= 1 MB/s
        proc = self._call(f"cat > {path}", stdin=data, timeout=timeout, what=f"the upload of {name}")
        if proc.returncode != 0:
            raise RemoteError(f"{self.device}: expected to write {name} to {remote_dir}. Received: exit "
                              f"{proc.returncode} ({proc.stderr.decode('utf-8', 'replace').strip()[:200]}). "
                              "Check free space on the device.")

    def _run_script(self, remote_dir: str, remote_model: str, *, runs: int, warmup: int,
                    threads: int | None, extra: list[str] | None = None) -> dict[str, Any]:
        words = [self.remote_python, f"{remote_dir}/bench_script.py", f"{remote_dir}/{remote_model}",
                 "--runs", str(int(runs)), "--warmup", str(int(warmup)), *(extra or [])]
        if threads is not None:
            words += ["--threads", str(int(threads))]
        pid_file = shlex.quote(f"{remote_dir}/pid")
        # exec keeps the pid recorded in the pid file: the cleanup kills that process if the run is abandoned.
        command = f"echo $$ > {pid_file} && exec {' '.join(shlex.quote(w) for w in words)}"
        proc = self._call(command, timeout=self.timeout, what="the benchmark")
        stdout = proc.stdout.decode("utf-8", "replace")
        line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(MARKER)), None)
        if line is None:
            excerpt = (stdout.strip() or proc.stderr.decode("utf-8", "replace").strip())[-300:]
            raise RemoteError(f"{self.device}: expected the runner's JSON result line. Received: exit "
                              f"{proc.returncode} and {excerpt!r}. Check --remote-python (it needs Python 3 "
                              "with numpy and ai-edge-litert or tflite-runtime).")
        try:
            payload = json.loads(line[len(MARKER):])
        except json.JSONDecodeError as exc:
            raise RemoteError(f"{self.device}: expected valid JSON from the runner. Received: "
                              f"{line[:200]!r}. Check the device's Python installation.") from exc
        if not isinstance(payload, dict):
            raise RemoteError(f"{self.device}: expected a JSON object from the runner. Received: "
                              f"{type(payload).__name__}. Check the device's Python installation.")
        if not payload.get("ok"):
            raise RemoteError(f"{self.device}: expected the model to run. Received: "
                              f"{str(payload.get('error', 'no error message'))[:300]}. Install what is missing "
                              "on the device or check the model.")
        samples = payload.get("samples_ms")
        if (not isinstance(samples, list) or not samples or len(samples) > MAX_SAMPLES
                or not all(isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) and s >= 0
                           for s in samples)):
            raise RemoteError(f"{self.device}: expected a list of run times from the runner. Received: "
                              f"{str(samples)[:100]!r}. Check the device's Python installation.")
        warmup = payload.get("warmup", 0)
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
            raise RemoteError(f"{self.device}: expected the runner's warmup count as a whole number. Received: "
                              f"{str(warmup)[:50]!r}. Check the device's Python installation.")
        return payload

    def _measurement(self, name: str, payload: dict[str, Any], threads: int | None) -> Measurement:
        timings = Timings.from_samples(payload["samples_ms"], warmup=int(payload.get("warmup") or 0))
        notes = [f"python {payload.get('python', '?')} on {payload.get('machine', '?')}"]
        return Measurement(model=name, dtype=str(payload.get("input_dtype", "")), timings=timings,
                           device=self.device, runtime=str(payload.get("runtime", "")), threads=threads,
                           init_ms=_number(payload.get("init_ms")), peak_rss_bytes=_int(payload.get("peak_rss_bytes")),
                           notes=notes)

    def _cleanup(self, remote_dir: str) -> str | None:
        """Kill an abandoned run and delete the directory; return a note if that failed (never raise)."""
        quoted = shlex.quote(remote_dir)
        pid_file = shlex.quote(f"{remote_dir}/pid")
        command = (f"if [ -f {pid_file} ]; then kill -9 \"$(cat {pid_file})\" 2>/dev/null; fi; "
                   f"rm -rf -- {quoted}")
        try:
            proc = self._call(command, timeout=self.connect_timeout + 20, what="the cleanup")
        except RemoteError as exc:
            return f"the remote directory {remote_dir} could not be removed ({exc}); delete it by hand"
        if proc.returncode != 0:
            return f"the remote directory {remote_dir} could not be removed (exit {proc.returncode}); delete it by hand"
        return None


class OutputCapExceeded(Exception):
    """A command printed more than its cap on ``stream``; it has been killed."""

    def __init__(self, stream: str, cap: int) -> None:
        super().__init__(f"{stream} exceeded {cap} bytes")
        self.stream, self.cap = stream, cap


def run_bounded(args: list[str], *, stdin: bytes | None, timeout: float, max_stdout: int,
                max_stderr: int) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run(args, capture_output=True)`` that reads in chunks and kills the command past a cap.

    Args:
        args: the command (an argument list, no shell).
        stdin: bytes for the command's standard input (written from a thread, so a large upload and a chatty
            command cannot block each other).
        timeout: seconds before the command is killed (``subprocess.TimeoutExpired``).
        max_stdout / max_stderr: the most bytes kept of each stream; one more raises ``OutputCapExceeded``.

    Returns:
        The ``CompletedProcess`` with both streams as bytes.

    Example:
        >>> run_bounded(["echo", "hi"], stdin=None, timeout=5, max_stdout=100, max_stderr=100).stdout
        b'hi\\n'
    """
    import selectors
    import threading
    import time

    proc = subprocess.Popen(args, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = None
    if stdin is not None:
        def feed() -> None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the command exited or was killed; its exit code says what happened

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
    caps = {proc.stdout: ("stdout", max_stdout), proc.stderr: ("stderr", max_stderr)}
    chunks: dict[Any, list[bytes]] = {proc.stdout: [], proc.stderr: []}
    sizes = dict.fromkeys(chunks, 0)
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            for stream in chunks:
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(args, timeout)
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    data = os.read(key.fd, _CHUNK)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    sizes[key.fileobj] += len(data)
                    name, cap = caps[key.fileobj]
                    if sizes[key.fileobj] > cap:
                        raise OutputCapExceeded(name, cap)
                    chunks[key.fileobj].append(data)
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if writer is not None:
            writer.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    return subprocess.CompletedProcess(args, proc.returncode, b"".join(chunks[proc.stdout]),
                                       b"".join(chunks[proc.stderr]))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


class SshEvalRunner:
    """Evaluate a model on a Linux device over ssh with the ``HostRunner.predict`` interface.

    Float inputs are quantized here with the model's own input parameters (exactly as ``HostRunner`` does), the
    device runs every sample on its interpreter, and the raw outputs are dequantized here: only the device's
    arithmetic differs from a host run.

    Args:
        model: the ``.tflite`` (a path or the bytes).
        runner: a configured ``SshRunner``.
        threads: interpreter threads on the device.
    """

    def __init__(self, model: bytes | str | os.PathLike[str], runner: SshRunner, *, threads: int | None = None) -> None:
        from edgecompress.runtimes.host import HostRunner

        self.local = HostRunner(model)
        self.runner = runner
        self.threads = threads
        self.runtime_name = f"device {runner.device}"
        self.measurement: Measurement | None = None

    def predict(self, x: np.ndarray | dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run every sample on the device; float (dequantized) outputs, samples first."""
        from edgecompress.runtimes.host import dequantize, quantize

        arrays = self.local._match_inputs(dict(x) if isinstance(x, dict) else {"input": np.asarray(x)})
        prepared = []
        for detail, arr in zip(self.local.input_details, arrays, strict=True):
            arr = np.asarray(arr)
            dtype = np.dtype(detail["dtype"])
            if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
                scale, zero_point = detail["quantization"]
                arr = quantize(arr, scale, zero_point, dtype)
            prepared.append(arr.astype(dtype, copy=False).reshape(len(arr), *detail["shape"][1:]))
        raw, self.measurement = self.runner.run_samples(self.local.model_bytes, prepared, threads=self.threads)
        self.runtime_name = f"{self.measurement.runtime or 'tflite'} on {self.runner.device}"
        if len(raw) != len(self.local.output_details):
            raise RemoteError(f"{self.runner.device}: expected {len(self.local.output_details)} outputs. Received: "
                              f"{len(raw)}. Check the device's runner.")
        result = []
        for detail, out in zip(self.local.output_details, raw, strict=True):
            per_sample = tuple(int(d) for d in detail["shape"])
            if np.dtype(out.dtype) != np.dtype(detail["dtype"]) or out[0].size != int(np.prod(per_sample)):
                raise RemoteError(f"{self.runner.device}: expected outputs of {np.dtype(detail['dtype']).name} "
                                  f"{list(per_sample)}. Received: {out.dtype.name} {list(out.shape[1:])}.")
            out = out.reshape(len(out), *per_sample)
            if np.issubdtype(out.dtype, np.integer) and detail["quantization"][0]:
                out = dequantize(out, *detail["quantization"])
            out = out.astype(np.float32, copy=False)
            result.append(out[:, 0] if per_sample and per_sample[0] == 1 else out)
        return result
