"""Production refuses to start on unsafe settings; development stays convenient."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError

from touchstone.core.config import Settings
from touchstone.main import create_app

STRONG = "k" * 48
PUBLIC = "https://gold.example-bank.in"


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"secret_key": "dev-secret-change-me"}, "SECRET_KEY"),
        ({"secret_key": "short-but-not-placeholder"}, "SECRET_KEY"),
        ({"secret_key": STRONG, "public_url": PUBLIC, "debug": True}, "DEBUG"),
        (
            {
                "secret_key": STRONG,
                "public_url": PUBLIC,
                "cors_origins": ["*"],
                "cors_allow_credentials": True,
            },
            "CORS",
        ),
        ({"secret_key": STRONG}, "PUBLIC_URL must be set"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(environment="production", **overrides)  # type: ignore[arg-type]


def paths(app: FastAPI) -> set[str]:
    return {str(route.path_format) for route in iter_route_contexts(app.routes)}


def test_production_hides_docs_unless_enabled() -> None:
    hidden = create_app(
        Settings(environment="production", secret_key=STRONG, public_url=PUBLIC)  # type: ignore[arg-type]
    )
    shown = create_app(
        Settings(
            environment="production",
            secret_key=STRONG,  # type: ignore[arg-type]
            public_url=PUBLIC,
            docs_enabled=True,
        )
    )
    assert hidden.openapi_url is None
    assert "/docs" not in paths(hidden)
    assert {"/docs", "/redoc", "/docs/assets/{name}"} <= paths(shown)


def test_development_shows_docs_and_keeps_a_random_secret_in_the_data_dir(
    tmp_path: Path,
) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    assert settings.show_docs
    assert not settings.json_logs
    secret = settings.secret_key.get_secret_value()
    assert len(secret) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    restarted = Settings(environment="development", data_dir=tmp_path)
    assert restarted.secret_key.get_secret_value() == secret
    elsewhere = Settings(environment="development", data_dir=tmp_path / "other")
    assert elsewhere.secret_key.get_secret_value() != secret


@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_public_placeholder_secret_is_refused(environment: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(
            environment=environment,  # type: ignore[arg-type]
            data_dir=tmp_path,
            secret_key="dev-secret-change-me",  # type: ignore[arg-type]
        )


def test_public_links_start_at_public_url_never_at_a_request(tmp_path: Path) -> None:
    """Development needs nothing set: links start at the local server (HOST:PORT)."""
    local = Settings(environment="development", data_dir=tmp_path, host="127.0.0.1", port=8141)
    assert local.link_base == "http://127.0.0.1:8141"
    deployed = Settings(
        environment="production",
        secret_key=STRONG,  # type: ignore[arg-type]
        public_url=f"{PUBLIC}/",
    )
    assert deployed.link_base == PUBLIC
    with pytest.raises(ValidationError, match="public_url"):  # a scheme, then a host
        Settings(environment="production", secret_key=STRONG, public_url="gold.example.in")  # type: ignore[arg-type]


def test_production_never_generates_its_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", data_dir=tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (Path(__file__).parents[2] / ".env.example").read_text().splitlines()
        if "=" in line
    }
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
