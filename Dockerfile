# syntax=docker/dockerfile:1
# The PDP as a container image: slim, non-root, the package installed from this checkout.
#
#   docker build -t pdp .
#   docker run --rm -p 8181:8181 -v pdp-state:/var/lib/pdp pdp
#
# It serves the example bundle with deploy/docker/pdp.toml, which trusts no issuer yet: mount
# your own pdp.toml over /etc/pdp/pdp.toml and your bundle over /etc/pdp/policies (docs/deploying.md).
# tests/deploy/test_image_startup.py runs this file's CMD with the files it copies.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY pdp ./pdp
COPY context ./context
# A virtualenv copied whole into the runtime stage: no compiler, pip cache or sources there.
RUN python -m venv /opt/pdp \
 && /opt/pdp/bin/pip install --no-cache-dir '.[postgres,redis]'

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pdp --shell /usr/sbin/nologin pdp \
 && mkdir -p /var/lib/pdp /etc/pdp \
 && chown pdp:pdp /var/lib/pdp
COPY --from=build /opt/pdp /opt/pdp
COPY deploy/docker/pdp.toml /etc/pdp/pdp.toml
COPY policies /etc/pdp/policies
ENV PATH=/opt/pdp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/pdp
# The SQLite decision log, dev-free state: keep it across container restarts.
VOLUME /var/lib/pdp
EXPOSE 8181
# Ready, not merely alive: /readyz is 503 while the log cannot commit or a trust source is stale.
# No curl in the slim image; Python's urllib raises (exit 1) on anything but 2xx.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8181/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["pdp", "serve", "--config", "/etc/pdp/pdp.toml"]
