# genvault for production: the wheel built from this checkout, its locked dependencies (every
# extra: PostgreSQL, Redis, S3, OpenAI, Anthropic, OpenTelemetry), run as an unprivileged user.
#   docker build -t genvault .        (compose.yaml builds it too, with PostgreSQL, Redis and MinIO)
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# The locked versions (uv.lock) of everything but the dev tools, and the wheel itself.
RUN mkdir -p /dist \
 && uv export --frozen --no-dev --all-extras --no-emit-project --no-hashes -o /dist/requirements.txt \
 && uv build --wheel --out-dir /dist

FROM python:3.11-slim
# jemalloc: `genvault serve` runs on it where installed (it gives a burst's memory back).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist /dist
RUN pip install --no-cache-dir -r /dist/requirements.txt \
 && pip install --no-cache-dir --no-deps /dist/genvault-*.whl \
 && rm -rf /dist \
 && useradd --create-home --uid 10001 genvault \
 && mkdir /data && chown genvault /data
USER genvault
# SQLite and local files under /data unless GENVAULT_DATABASE_URL / GENVAULT_BLOB_STORE say otherwise.
ENV GENVAULT_HOST=0.0.0.0 \
    GENVAULT_PORT=8000 \
    GENVAULT_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# `genvault serve` creates or migrates the schema at start, then serves.
CMD ["genvault", "serve"]
