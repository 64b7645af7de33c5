# Recovery Tracker API on SQLite in a /data volume, one process.
# RECOVERY_ENVIRONMENT defaults to production, which refuses to start without a real secret:
#   docker run -e RECOVERY_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
#     -v recovery-data:/data -p 8000:8000 recovery-tracker
# For PostgreSQL, set RECOVERY_DATABASE_URL=postgresql+psycopg://... (see README.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.8

WORKDIR /app

# Dependencies first (from the lock, hashes checked): this layer survives source changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. It stays an editable install: api/migrations.py finds alembic.ini
# and alembic/ next to the api package, so they must stay in /app.
COPY api/ api/
COPY models/ models/
COPY alembic/ alembic/
COPY alembic.ini ./
RUN uv sync --frozen --no-dev

RUN groupadd --system --gid 10001 recovery \
    && useradd --system --uid 10001 --gid recovery --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin recovery \
    && mkdir /data \
    && chown recovery:recovery /data

# SQLite needs to write its -wal/-shm files next to the database, so the whole directory is ours.
ENV PATH="/app/.venv/bin:$PATH" \
    RECOVERY_DATABASE_URL=sqlite:////data/recovery-tracker.db
VOLUME ["/data"]
USER recovery

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Applies migrations, then serves. Keep one process on SQLite (the CLI refuses --workers > 1).
# Behind a proxy, set RECOVERY_FORWARDED_ALLOW_IPS to its address.
CMD ["recovery-tracker", "serve", "--host", "0.0.0.0", "--port", "8000"]
