# The kubellm operator image: ghcr.io/kubellm/kubellm:<version> (the chart's appVersion).
#   docker build -t ghcr.io/kubellm/kubellm:0.1.0 .
# Runs as uid/gid 10001 (non-root) and works with a read-only root filesystem (HOME=/tmp; the
# chart mounts an emptyDir there).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/kubellm-*.whl

FROM python:3.11-slim
LABEL org.opencontainers.image.title="kubellm" \
      org.opencontainers.image.description="Kubernetes operator for self-hosting open LLMs" \
      org.opencontainers.image.source="https://github.com/kubellm/kubellm" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    MALLOC_ARENA_MAX=2
RUN groupadd --system --gid 10001 kubellm \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin kubellm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels kubellm \
 && rm -rf /wheels
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["kubellm"]
CMD ["run", "-A", "--metrics-port", "8080"]
