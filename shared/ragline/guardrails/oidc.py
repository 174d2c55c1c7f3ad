"""End-user ID tokens (OIDC): verify a bearer JWT against a trusted issuer's JWKS (issue 18).

A token is told from an API key by its shape (`rl_…` keys have no dots; a JWT is three
base64url segments starting `eyJ`), never by trying one after the other. Verification pins
everything the token could choose itself: the issuer must be configured (exact `iss`), the
algorithm must be one that issuer allows (RS256/ES256 only: `none` and HMAC are never
accepted, so a public key cannot be abused as a shared secret), the key comes from that
issuer's JWKS by `kid` and must be of the algorithm's type, and `aud`, `exp`, `iat`, `sub`
are required, with a bounded clock skew and a bounded lifetime.

Key sets are cached per URL for `JWKS_CACHE_S`; an unknown `kid` (key rotation) refetches,
at most once per `JWKS_REFETCH_MIN_S`, so forged kids cannot make us hammer the issuer.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ragline.core.config import OidcIssuer, get_settings
from ragline.core.errors import UnauthenticatedError

_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MAX_TOKEN_CHARS = 16_384
#: The key type each allowed algorithm needs.
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


def looks_like_jwt(raw: str) -> bool:
    """True for the shape of a compact JWS (`eyJ….….…`); API keys never have it."""
    return len(raw) <= MAX_TOKEN_CHARS and _JWT_SHAPE.fullmatch(raw) is not None


@dataclass(frozen=True)
class Identity:
    """A verified end user: who (issuer + subject), and the claims ragline uses."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    #: The org claim's value (slug or id); None with `org_from_claim` false: the membership
    #: table decides; None with it true: the claim is missing (403, never a default org).
    org_ref: str | None
    org_from_claim: bool
    groups: frozenset[str]
    claims: dict[str, Any]


#: Group names ragline keeps (others are dropped: they become principal strings).
_GROUP = re.compile(r"[A-Za-z0-9._:@/+-]{1,128}")
MAX_GROUPS = 200


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (`firebase.tenant`), None when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _groups(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    return frozenset(g for g in value[:MAX_GROUPS] if isinstance(g, str) and _GROUP.fullmatch(g))


class _KeySet:
    """One issuer's JWKS: keys by kid, when fetched, and the fetch lock."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetched_at = float("-inf")
        self.lock = threading.Lock()


_key_sets: dict[str, _KeySet] = {}
_key_sets_lock = threading.Lock()


def reset_cache() -> None:
    """Forget every cached key set (tests)."""
    with _key_sets_lock:
        _key_sets.clear()


def _fetch(uri: str) -> dict[str, Any]:
    if uri.startswith("file://"):
        # Only the local test issuer has a file key set; Settings.trusted_issuers refuses
        # file:// outside local/test.
        data = Path(urlparse(uri).path).read_text()
    else:
        import httpx

        resp = httpx.get(uri, timeout=5.0, follow_redirects=False)
        resp.raise_for_status()
        data = resp.text
    parsed = json.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("a JWKS is a JSON object")
    return parsed


def _parse_jwks(doc: dict[str, Any]) -> dict[str, Any]:
    import jwt

    out: dict[str, Any] = {}
    for entry in doc.get("keys") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            out[entry["kid"]] = jwt.PyJWK(entry)
        except jwt.PyJWKError:
            continue
    return out


def signing_key(uri: str, kid: str) -> Any:
    """The PyJWK for `kid` from the key set at `uri`: cached; refetched when stale or when
    the kid is unknown (rotation), but never more often than JWKS_REFETCH_MIN_S."""
    settings = get_settings()
    with _key_sets_lock:
        ks = _key_sets.setdefault(uri, _KeySet())
    with ks.lock:
        age = time.monotonic() - ks.fetched_at
        stale = age > settings.jwks_cache_s
        if stale or (kid not in ks.keys and age >= settings.jwks_refetch_min_s):
            try:
                ks.keys = _parse_jwks(_fetch(uri))
                ks.fetched_at = time.monotonic()
            except Exception as exc:
                if not ks.keys or stale:
                    raise UnauthenticatedError("the issuer's signing keys are unavailable") from exc
        key = ks.keys.get(kid)
    if key is None:
        raise UnauthenticatedError("token signed with an unknown key")
    return key


def verify(token: str, issuers: dict[str, OidcIssuer] | None = None) -> Identity:
    """Verify an ID token; UnauthenticatedError for anything not perfectly right."""
    import jwt

    if not looks_like_jwt(token):
        raise UnauthenticatedError("malformed bearer token")
    trusted = issuers if issuers is not None else get_settings().trusted_issuers()
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise UnauthenticatedError("malformed bearer token") from exc
    iss = unverified.get("iss")
    config = trusted.get(iss) if isinstance(iss, str) else None
    if config is None:
        raise UnauthenticatedError("token from an untrusted issuer")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in config.algorithms:
        raise UnauthenticatedError("token algorithm not allowed for its issuer")
    if not isinstance(kid, str) or not kid:
        raise UnauthenticatedError("token without a key id")
    key = signing_key(config.jwks_uri, kid)
    if _kty(key) != _KEY_TYPES[alg]:
        raise UnauthenticatedError("token key does not match its algorithm")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=[alg],
            audience=list(config.audiences),
            issuer=config.issuer,
            leeway=config.leeway_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_iat": True},
        )
    except jwt.PyJWTError as exc:
        raise UnauthenticatedError(f"invalid token: {type(exc).__name__}") from exc
    now = time.time()
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or iat > now + config.leeway_s:
        raise UnauthenticatedError("invalid token: issued in the future")
    if exp - iat > config.max_lifetime_s:
        raise UnauthenticatedError("invalid token: lifetime too long")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise UnauthenticatedError("invalid token: bad subject")
    email = claims.get("email")
    org_ref = claim(claims, config.org_claim) if config.org_claim else None
    return Identity(
        issuer=config.issuer,
        subject=sub,
        email=email.lower() if isinstance(email, str) and len(email) <= 320 else None,
        email_verified=claims.get("email_verified") is True,
        org_ref=org_ref if isinstance(org_ref, str) and org_ref else None,
        org_from_claim=config.org_claim is not None,
        groups=_groups(claim(claims, config.groups_claim)) if config.groups_claim else frozenset(),
        claims=claims,
    )


def _kty(key: Any) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key.key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key.key, ec.EllipticCurvePublicKey) and key.key.curve.name == "secp256r1":
        return "EC"  # ES256 is P-256 only
    return None
