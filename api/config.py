"""Settings from the environment (prefix RECOVERY_)."""

from enum import StrEnum
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})
DEFAULT_SECRET = "changeme"


class Environment(StrEnum):
    local = "local"
    test = "test"
    production = "production"


class InsecureSettings(ValueError):
    """The configuration must not be used to serve real patient data."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOVERY_", env_file=".env", extra="ignore")

    environment: Environment = Environment.production
    database_url: str = "sqlite:///./recovery-tracker.db"
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    staff_refresh_hours: int = Field(default=12, ge=1, le=24 * 30)
    patient_refresh_days: int = Field(default=30, ge=1, le=365)
    enrolment_code_hours: int = Field(default=72, ge=1, le=72)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=60, ge=1)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    db_pool_size: int = Field(default=20, ge=1)
    # Threads per process for read-only use-cases (`Database.query`), outside the write queue.
    db_read_threads: int = Field(default=4, ge=1)
    # How often `serve` runs the clock sweep (seconds); 0 turns it off (run `sweep` from cron).
    sweep_interval_seconds: int = Field(default=300, ge=0, le=24 * 3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "info"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> "Settings":
        secret = self.secret_key.get_secret_value()
        if self.environment == Environment.production and (
            secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < 32
        ):
            raise InsecureSettings(
                "RECOVERY_SECRET_KEY is a placeholder or shorter than 32 characters; set a long "
                "random value (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "or RECOVERY_ENVIRONMENT=local for a local trial"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
