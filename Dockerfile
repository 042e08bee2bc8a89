# Nexus: one image for every role. `docker run IMAGE` serves the web role;
# `docker run IMAGE worker` / `beat` run Celery. Configured only by environment
# variables (README, "Production"); compose.yaml wires web, worker, beat,
# PostgreSQL and Redis.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NEXUS_DATA_DIR=/data \
    NEXUS_BIND=0.0.0.0:8000

WORKDIR /app
# The same command the clean-install test runs (tests/settings/test_clean_install.py).
COPY requirements.txt ./
COPY scripts/build-env scripts/
RUN NEXUS_PYTHON=python scripts/build-env /opt/venv /tmp/wheels \
    && rm -rf /tmp/wheels /root/.cache/pip

COPY . .
# Compile routing/pipeline with mypyc (routing/pipeline_build.py); the compiler
# goes again afterwards.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
    && python -m routing.dev.compile_pipeline \
    && apt-get purge -y -qq gcc libc6-dev >/dev/null && apt-get autoremove -y -qq \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home-dir /app nexus \
    && mkdir -p /data && chown nexus /data
USER nexus
VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["scripts/serve"]
CMD ["web"]
