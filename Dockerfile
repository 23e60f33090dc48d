# One image for the POP (`edge-pop serve`, the default), the stream gateway
# (`edge-pop gateway`) and the operator (`python -m pop_operator`).
#
#   docker build -t REGISTRY/edge-pop:TAG .
#
# BASE_IMAGE is any Debian-like image with python3 (3.11+) and its venv module. The
# tests build FROM a base made by mmdebstrap from Debian's packages (tools/image/build.sh),
# since no image can be pulled there.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Behind a TLS-inspecting proxy, point these at a CA bundle that trusts it (and make the
# file visible to the build); unset, the image's own CAs are used.
ARG PIP_CERT
ARG SSL_CERT_FILE
# The versions in uv.lock, nothing newer: the same lock the tests ran against.
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --quiet "uv==${UV_VERSION}"
WORKDIR /src
ENV UV_PROJECT_ENVIRONMENT=/opt/edge-pop \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# Dependencies first, from the lock alone: a change to the code reuses this layer.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra operator --no-install-project --python python3
COPY README.md ./
COPY pop ./pop
COPY operator/pop_operator ./operator/pop_operator
RUN /opt/uv/bin/uv sync --frozen --no-dev --extra operator --no-editable --python python3

FROM ${BASE_IMAGE}
# 65532: the user the operator's Deployment and the POPs' pods run as.
RUN groupadd --gid 65532 edge-pop \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /data --shell /usr/sbin/nologin edge-pop \
    && mkdir -p /data && chown 65532:65532 /data
COPY --from=build /opt/edge-pop /opt/edge-pop
ENV PATH=/opt/edge-pop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 3000
ENTRYPOINT ["edge-pop"]
CMD ["serve", "--env-file", ""]
