"""Signed upload URLs in Google Cloud: no private key, so the V4 signature comes from IAM
signBlob as the function's own service account. The IAM API is faked at the HTTP level
(`responses`), the credentials in memory; google-cloud-storage's own signing code runs."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import google.auth
import pytest
import responses

from ragline.cloud.gcp import storage
from ragline.core.errors import ConfigurationError, TransientError

EMAIL = "p-uploads@proj.iam.gserviceaccount.com"
SIGN_BLOB = f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{EMAIL}:signBlob"


class FakeComputeCredentials:
    """What `google.auth.default()` returns on Cloud Functions: no key, an email known only
    after the first refresh (from the metadata server)."""

    def __init__(self) -> None:
        self.valid = False
        self.token: str | None = None
        self.service_account_email = "default"
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.valid, self.token = True, "ya29.fake-token"
        self.service_account_email = EMAIL
        self.refreshes += 1


@pytest.fixture()
def credentials(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[..., None]
) -> Iterator[FakeComputeCredentials]:
    fake = FakeComputeCredentials()
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (fake, "proj"))
    # The client itself may talk to an emulator: only the signing path matters here.
    configure(storage_emulator_host="http://127.0.0.1:9")
    monkeypatch.delenv("STORAGE_SIGNING_KEY_FILE", raising=False)
    storage.reset_clients()
    yield fake
    storage.reset_clients()


def _sign(**headers: str) -> str:
    return storage.signed_put_url("b", "orgs/o/u/a.pdf", "application/pdf", 900, headers=headers)


@responses.activate
def test_signs_through_iam_sign_blob_as_the_function_account(
    credentials: FakeComputeCredentials,
) -> None:
    signature = b"\x01\x02signature"
    responses.post(
        SIGN_BLOB,
        json={"keyId": "k1", "signedBlob": base64.b64encode(signature).decode()},
    )
    url = _sign(**{"x-goog-content-length-range": "0,10"})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Goog-Credential"][0].startswith(EMAIL + "/")
    assert query["X-Goog-Signature"] == [signature.hex()]
    [call] = responses.calls
    assert call.request.headers["Authorization"] == "Bearer ya29.fake-token"
    body = call.request.body
    assert isinstance(body, str | bytes)
    payload = base64.b64decode(json.loads(body)["payload"]).decode()
    assert payload.startswith("GOOG4-RSA-SHA256\n")  # the V4 string to sign
    _sign()
    assert credentials.refreshes == 1  # a valid token is reused


@responses.activate
def test_a_configured_signer_account_wins(
    credentials: FakeComputeCredentials, configure: Callable[..., None]
) -> None:
    other = "signer@proj.iam.gserviceaccount.com"
    configure(storage_signer_service_account=other, storage_emulator_host="http://127.0.0.1:9")
    responses.post(
        SIGN_BLOB.replace(EMAIL, other),
        json={"keyId": "k1", "signedBlob": base64.b64encode(b"s").decode()},
    )
    assert f"X-Goog-Credential={urllib.parse.quote(other)}" in _sign()


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}}, ConfigurationError),
        (503, {"error": {"code": 503, "status": "UNAVAILABLE"}}, TransientError),
    ],
    ids=["refused", "unavailable"],
)
def test_sign_blob_failures(
    credentials: FakeComputeCredentials,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
) -> None:
    responses.post(SIGN_BLOB, json=body, status=status)
    with pytest.raises(error):
        _sign()
