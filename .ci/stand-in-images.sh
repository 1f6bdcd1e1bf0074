#!/usr/bin/env bash
# shellcheck disable=SC2016  # the mmdebstrap hooks expand $1 themselves
# CI ONLY, NOT PART OF THE PROJECT'S IMAGE. This machine reaches Debian's mirror and PyPI but no
# container registry, so the three public images the Dockerfile and docker-compose.yml name are
# made here under the same names, from Debian packages and the uv wheel:
#   python:3.11-slim-bookworm  Debian 12's python3.11, linked into /usr/local/bin like the real one
#   ghcr.io/astral-sh/uv:X.Y.Z the uv binary of the version the Dockerfile pins (from PyPI's wheel)
#   redis:7.4-alpine           Debian 12's redis-server 7.0, protected mode off like the official
# Each is made once and kept in the podman storage of .ci/container-smoke.sh (which sources this
# file with its podman configuration exported). Where a registry is reachable, none of this runs
# in a user's `docker compose up --build`: Docker pulls the real images.
set -euo pipefail
: "${ST:?set by .ci/container-smoke.sh}" "${SRC:?}" "${MIRROR:?}"

# Slim like debian:bookworm-slim, which python:3.11-slim builds on: dpkg leaves out docs, man
# pages, info and translations (debuerreotype's slimify list). Without it the stand-in was 219 MB
# and the image-size check measured Debian's docs. The label marks a stand-in made so: an older
# one kept in the CI storage is made again.
SLIM=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/groff/*'
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
      --dpkgopt='path-exclude=/usr/share/linda/*' --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-include=/usr/share/locale/locale.alias')
if [ "$(podman image inspect -f '{{index .Labels "ci.stand-in"}}' \
      docker.io/library/python:3.11-slim-bookworm 2>/dev/null)" != slim ]; then
  log "stand-in python:3.11-slim-bookworm"
  mmdebstrap --quiet --variant=minbase "${SLIM[@]}" \
    --include=python3.11,ca-certificates,netbase,tzdata \
    --customize-hook='chroot "$1" sh -c "ln -s /usr/bin/python3.11 /usr/local/bin/python3.11 && ln -s python3.11 /usr/local/bin/python3 && ln -s python3 /usr/local/bin/python && apt-get clean && rm -rf /var/lib/apt/lists/*"' \
    bookworm "$ST/python.tar" "$MIRROR"
  podman import -q --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' --change 'LABEL ci.stand-in=slim' \
    "$ST/python.tar" docker.io/library/python:3.11-slim-bookworm >/dev/null
  rm -f "$ST/python.tar"
fi

uv_ref=$(sed -n 's/^ARG UV_IMAGE=//p' "$SRC/Dockerfile")   # ghcr.io/astral-sh/uv:X.Y.Z
if ! podman image exists "$uv_ref"; then
  log "stand-in $uv_ref"
  rm -rf "$ST/uv" && mkdir -p "$ST/uv"
  make -C "$SRC" --no-print-directory -s .tools/bin/uv   # a venv with pip
  "$SRC/.tools/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 "uv==${uv_ref##*:}" -d "$ST/uv"
  "$SRC/.tools/bin/python" -m zipfile -e "$ST"/uv/uv-*.whl "$ST/uv/x"
  install -m 755 "$ST"/uv/x/uv-*.data/scripts/uv "$ST"/uv/x/uv-*.data/scripts/uvx "$ST/uv/"
  printf 'FROM scratch\nCOPY uv uvx /\nENTRYPOINT ["/uv"]\n' >"$ST/uv/Containerfile"
  podman build -q --pull=never -t "$uv_ref" "$ST/uv" >/dev/null
  rm -rf "$ST/uv"
fi

if ! podman image exists docker.io/library/redis:7.4-alpine; then
  log "stand-in redis:7.4-alpine"
  rm -rf "$ST/redis" && mkdir -p "$ST/redis"
  mmdebstrap --quiet --variant=minbase --include=redis-server,redis-tools \
    --customize-hook='chroot "$1" sh -c "apt-get clean && rm -rf /var/lib/apt/lists/*"' \
    bookworm "$ST/redis.tar" "$MIRROR"
  podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$ST/redis.tar" localhost/ci-redis-rootfs:bookworm >/dev/null
  rm -f "$ST/redis.tar"
  cat >"$ST/redis/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = redis-server ]; then
  shift; set -- redis-server "$@" --protected-mode no
  [ "$(id -u)" = 0 ] && exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
EOF
  chmod 755 "$ST/redis/docker-entrypoint.sh"
  printf '%s\n' 'FROM localhost/ci-redis-rootfs:bookworm' \
    'COPY docker-entrypoint.sh /usr/local/bin/' 'RUN mkdir -p /data && chown redis:redis /data' \
    'WORKDIR /data' 'VOLUME /data' 'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]' \
    >"$ST/redis/Containerfile"
  podman build -q --pull=never --network none -t docker.io/library/redis:7.4-alpine \
    "$ST/redis" >/dev/null
  rm -rf "$ST/redis"
fi
