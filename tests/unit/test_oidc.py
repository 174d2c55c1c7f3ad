"""ID tokens as an attacker would send them (issue 18): forged, expired, wrong audience or
issuer, alg=none, HS/RS confusion, unknown kids; JWKS rotation and refetch limits."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ragline.core.config import OidcIssuer, get_settings
from ragline.core.errors import UnauthenticatedError
from ragline.guardrails import oidc

ISS = "https://issuer.example/tenant"
AUD = "ragline-app"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        out = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        out = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    out.update(kid=kid, use="sig")
    assert isinstance(out, dict)
    return out


@pytest.fixture()
def jwks(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [_jwk(RSA_KEY, "r1"), _jwk(EC_KEY, "e1")]}))
    oidc.reset_cache()
    get_settings.cache_clear()
    yield path
    oidc.reset_cache()


def _issuers(jwks: Path, **kw: Any) -> dict[str, OidcIssuer]:
    conf = OidcIssuer(
        issuer=ISS,
        audiences=(AUD,),
        jwks_uri=jwks.as_uri(),
        algorithms=kw.pop("algorithms", ("RS256", "ES256")),
        org_claim="org",
        **kw,
    )
    return {ISS: conf}


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "email": "Ann@Example.com",
        "email_verified": True,
        "org": "acme",
        "groups": ["hr", "bad,group", 3],
        "iat": now,
        "exp": now + 600,
    }
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str = "r1") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_a_valid_token_gives_its_identity(jwks: Path) -> None:
    ident = oidc.verify(_sign(_claims()), _issuers(jwks))
    assert (ident.issuer, ident.subject, ident.email) == (ISS, "user-1", "ann@example.com")
    assert ident.org_ref == "acme" and ident.email_verified
    assert ident.groups == frozenset({"hr"})  # a comma would break the principals list


def test_es256_tokens_verify(jwks: Path) -> None:
    assert oidc.verify(_sign(_claims(), EC_KEY, "ES256", "e1"), _issuers(jwks)).subject == "user-1"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (
            "expired",
            lambda: _sign(_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        ),
        ("wrong audience", lambda: _sign(_claims(aud="someone-else"))),
        ("wrong issuer", lambda: _sign(_claims(iss="https://evil.example"))),
        ("issuer lookalike", lambda: _sign(_claims(iss=ISS + "/"))),
        ("no subject", lambda: _sign(_claims(sub=None))),
        ("no expiry", lambda: _sign(_claims(exp=None))),
        (
            "issued in the future",
            lambda: _sign(_claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 4000)),
        ),
        ("lifetime too long", lambda: _sign(_claims(exp=int(time.time()) + 30 * 86400))),
        ("forged signature", lambda: _sign(_claims(), OTHER_RSA)),
        ("unknown kid", lambda: _sign(_claims(), OTHER_RSA, kid="r9")),
        ("no kid", lambda: jwt.encode(_claims(), RSA_KEY, algorithm="RS256")),
        ("alg none", lambda: f"{_b64({'alg': 'none', 'kid': 'r1'})}.{_b64(_claims())}."),
        (
            "alg none signed",
            lambda: jwt.encode(_claims(), "", algorithm="none", headers={"kid": "r1"}),
        ),
        ("RS key under ES256", lambda: _sign(_claims(), EC_KEY, "ES256", "r1")),
        ("EC key under RS256", lambda: _sign(_claims(), RSA_KEY, "RS256", "e1")),
        ("PS256", lambda: _sign(_claims(), RSA_KEY, "PS256")),
        ("tampered payload", lambda: _tamper(_sign(_claims()))),
        ("not a JWT", lambda: "rl_0123456789ab_" + "x" * 30),
    ],
)
def test_bad_tokens_are_refused(jwks: Path, name: str, make: Any) -> None:
    with pytest.raises(UnauthenticatedError):
        oidc.verify(make(), _issuers(jwks))


def _tamper(token: str) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{_b64(_claims(sub='admin'))}.{sig}"


def test_hs256_with_the_public_key_as_secret_is_refused(jwks: Path) -> None:
    """HS/RS confusion: HMAC over the token with the issuer's public key as the secret."""
    import hashlib
    import hmac

    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'r1'})}.{_b64(_claims())}"
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing.encode(), hashlib.sha256).digest())
    token = f"{signing}.{sig.rstrip(b'=').decode()}"
    with pytest.raises(UnauthenticatedError, match="algorithm"):
        oidc.verify(token, _issuers(jwks))
    # Even an issuer misconfigured to list HS256 is impossible: the setting refuses it.
    with pytest.raises(ValueError):
        OidcIssuer(issuer=ISS, audiences=(AUD,), jwks_uri=jwks.as_uri(), algorithms=("HS256",))


def test_algorithms_are_pinned_per_issuer(jwks: Path) -> None:
    with pytest.raises(UnauthenticatedError, match="algorithm"):
        oidc.verify(_sign(_claims(), EC_KEY, "ES256", "e1"), _issuers(jwks, algorithms=("RS256",)))


def test_clock_skew_within_leeway_is_accepted(jwks: Path) -> None:
    now = int(time.time())
    token = _sign(_claims(iat=now - 700, exp=now - 10))
    assert oidc.verify(token, _issuers(jwks, leeway_s=30)).subject == "user-1"
    with pytest.raises(UnauthenticatedError):
        oidc.verify(token, _issuers(jwks, leeway_s=0))


def test_a_rotated_key_is_fetched_once_and_refetches_are_rate_limited(
    jwks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[str] = []
    real = oidc._fetch

    def counting(uri: str) -> dict[str, Any]:
        fetches.append(uri)
        return real(uri)

    monkeypatch.setattr(oidc, "_fetch", counting)
    monkeypatch.setenv("JWKS_REFETCH_MIN_S", "3600")
    get_settings.cache_clear()
    issuers = _issuers(jwks)
    oidc.verify(_sign(_claims()), issuers)
    oidc.verify(_sign(_claims()), issuers)
    assert len(fetches) == 1  # cached
    # The issuer rotates: a new kid appears. Within the refetch interval it is not fetched...
    jwks.write_text(json.dumps({"keys": [_jwk(OTHER_RSA, "r2")]}))
    for _ in range(5):  # ...however many forged kids arrive
        with pytest.raises(UnauthenticatedError, match="unknown key"):
            oidc.verify(_sign(_claims(), OTHER_RSA, kid="r2"), issuers)
    assert len(fetches) == 1
    # ...and after it, one fetch picks it up.
    monkeypatch.setenv("JWKS_REFETCH_MIN_S", "0")
    get_settings.cache_clear()
    assert oidc.verify(_sign(_claims(), OTHER_RSA, kid="r2"), issuers).subject == "user-1"
    assert len(fetches) == 2
    get_settings.cache_clear()


def test_tokens_and_api_keys_are_told_apart_by_shape() -> None:
    assert oidc.looks_like_jwt(_sign(_claims()))
    assert not oidc.looks_like_jwt("rl_0123456789ab_" + "x" * 40)
    assert not oidc.looks_like_jwt("eyJhbGciOi")


def test_the_local_issuer_is_trusted_only_in_local_and_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragline.core.config import LOCAL_ISSUER, Settings

    monkeypatch.setenv("RAGLINE_HOME", str(tmp_path))
    file_issuer = {"issuer": ISS, "audiences": [AUD], "jwks_uri": "file:///etc/jwks.json"}
    monkeypatch.setenv("OIDC_ISSUERS", json.dumps([file_issuer]))
    assert set(Settings(environment="test").trusted_issuers()) == {ISS, LOCAL_ISSUER}
    assert Settings(environment="gcp").trusted_issuers() == {}
    assert set(Settings(environment="local", oidc_local_issuer=False).trusted_issuers()) == {ISS}
