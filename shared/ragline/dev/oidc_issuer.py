"""The local test issuer (issue 18): an RSA key generated once under RAGLINE_HOME/oidc, its
JWKS written beside it (`Settings.trusted_issuers` reads it as a file:// key set, and only when
ENVIRONMENT is local or test), and `ragline dev token` signing ID tokens with it."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from ragline.core.config import LOCAL_AUDIENCE, LOCAL_ISSUER, Settings, get_settings

KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"


def folder(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).ragline_home / "oidc"


def _kid(public_pem: bytes) -> str:
    import hashlib

    return hashlib.sha256(public_pem).hexdigest()[:16]


def ensure_key(settings: Settings | None = None) -> tuple[Any, str]:
    """The local signing key and its kid, generated (with jwks.json) on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    settings = settings or get_settings()
    if settings.environment not in ("local", "test"):
        raise RuntimeError("the local test issuer exists only when ENVIRONMENT is local or test")
    home = folder(settings)
    key_path = home / KEY_FILE
    if key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise RuntimeError(f"{key_path} is not an RSA key")
        key = loaded
    else:
        home.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = key_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        tmp.replace(key_path)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = _kid(public_pem)
    jwks_path = home / JWKS_FILE
    if not jwks_path.exists() or kid not in jwks_path.read_text():
        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig", alg="RS256")
        tmp = jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [jwk]}))
        tmp.replace(jwks_path)
    return key, kid


def token(
    org: str | None,
    email: str,
    *,
    groups: list[str] | None = None,
    subject: str | None = None,
    lifetime_s: int = 3600,
    settings: Settings | None = None,
    **extra: Any,
) -> str:
    """A signed ID token of the local issuer for `email` in org `org` (slug or id)."""
    import jwt

    key, kid = ensure_key(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "sub": subject or str(uuid.uuid5(uuid.NAMESPACE_URL, f"ragline-local:{email.lower()}")),
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + lifetime_s,
    }
    if org is not None:
        claims["org"] = org
    if groups:
        claims["groups"] = groups
    claims.update(extra)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
