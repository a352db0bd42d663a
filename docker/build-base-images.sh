#!/usr/bin/env bash
# Makes the base images the Dockerfiles and compose files under docker/ start from available in
# the local Docker engine, on a machine that cannot reach an image registry:
#
#   debian:bookworm-slim     (docker/php-fpm.Dockerfile)   debootstrap --variant=minbase, from
#                                                          Debian's package mirror
#   node:20-bookworm-slim    (docker/Dockerfile)           the above + this machine's Node 20 and
#                                                          npm, a `node` user with uid 1000
#   nginx:stable             (both compose files)          the above + Debian's nginx, serving
#                                                          /etc/nginx/conf.d
#
# For each tag: if the engine has it, nothing is done; else `docker pull` is tried (a few seconds
# at most); only when that fails is a stand-in built. Where the real images can be pulled they are
# used, and the Dockerfiles are written for them: the stand-ins only provide what those files rely
# on. Run it as a user who may use the engine and run debootstrap (root):
#
#   bash docker/build-base-images.sh
#
# The stand-ins trust this machine's CA bundle (/etc/ssl/certs/ca-certificates.crt, also as
# NODE_EXTRA_CA_CERTS) and use its npm registry, so that `npm ci` and `apt-get` inside a build
# work where they work on this machine. Environment: DEBIAN_MIRROR (default
# http://deb.debian.org/debian), PULL_TIMEOUT (seconds, default 20; 0 skips pulling), FORCE=1
# rebuilds the stand-ins even when the tags exist.
set -euo pipefail

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PULL_TIMEOUT=${PULL_TIMEOUT:-20}
FORCE=${FORCE:-0}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

say() { echo "build-base-images: $*" >&2; }

# The engine has the tag (built or pulled before: nothing to do), or can pull it now.
available() {
  local tag=$1
  [ "$FORCE" = 1 ] && return 1
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  [ "$PULL_TIMEOUT" = 0 ] && return 1
  say "$tag: not in the engine, trying docker pull"
  if timeout "$PULL_TIMEOUT" docker pull "$tag" >/dev/null 2>&1; then
    say "$tag: pulled"
    return 0
  fi
  say "$tag: cannot be pulled: building a local stand-in"
  return 1
}

work=$(mktemp -d)
# --one-file-system: debootstrap mounts /proc and /sys inside the tree it builds; a run interrupted
# there must not reach into them.
trap 'rm -rf --one-file-system "$work" 2>/dev/null || true' EXIT

debian_slim() {
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
    say "debootstrap is not installed (apt-get install debootstrap; scripts/install-test-deps.sh does)"
    exit 1
  }
  local root=$work/rootfs
  say "debian:bookworm-slim: debootstrap --variant=minbase bookworm from $DEBIAN_MIRROR"
  PATH=$PATH:/usr/sbin:/sbin debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    say "debootstrap failed"
    exit 1
  }
  # What the official image sets up: the three bookworm suites, no recommends kept as cache, no
  # documentation unpacked, and apt's downloads deleted after each install.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  # This machine's CA bundle: HTTPS from inside a build trusts what it trusts here (minbase has no
  # ca-certificates package; the official image has none either).
  if [ -r "$CA_BUNDLE" ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  : >"$root/etc/hostname"
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' \
    -m 'local stand-in for debian:bookworm-slim (docker/build-base-images.sh)' \
    - debian:bookworm-slim >/dev/null
  rm -rf "$root"
  say "debian:bookworm-slim: built"
}

node_slim() {
  local node npm_dir registry ctx=$work/node
  node=$(command -v node) || { say "node is not installed on this machine"; exit 1; }
  case "$("$node" --version)" in
    v20.*) ;;
    *) say "node:20-bookworm-slim needs this machine's node to be Node 20, it is $("$node" --version)"; exit 1 ;;
  esac
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [ -f "$npm_dir/package.json" ] || { say "npm not found next to node"; exit 1; }
  mkdir -p "$ctx"
  cp "$(readlink -f "$node")" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  # The registry this machine's npm uses (a mirror, say), and only that: no tokens.
  : >"$ctx/npmrc"
  registry=$(npm config get registry 2>/dev/null || true)
  if [ -n "$registry" ] && [ "$registry" != "https://registry.npmjs.org/" ]; then
    echo "registry=$registry" >"$ctx/npmrc"
  fi
  cat >"$ctx/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
# As in the official image: a `node` user and group with id 1000, node and npm in /usr/local.
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY npmrc /usr/local/etc/npmrc
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.description="local stand-in for node:20-bookworm-slim (docker/build-base-images.sh)"
CMD ["node"]
EOF
  say "node:20-bookworm-slim: from debian:bookworm-slim with $("$node" --version) and npm $(npm --version)"
  docker build -q -t node:20-bookworm-slim "$ctx" >/dev/null
  say "node:20-bookworm-slim: built"
}

nginx_stable() {
  local ctx=$work/nginx
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
# Debian's nginx, arranged as the official image is: sites come from /etc/nginx/conf.d (Debian's
# default site is removed), logs go to the container's stdout and stderr, nginx in the foreground.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \
 && mkdir -p /etc/nginx/conf.d \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
LABEL org.opencontainers.image.description="local stand-in for nginx:stable (docker/build-base-images.sh)"
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
  say "nginx:stable: from debian:bookworm-slim with Debian's nginx"
  docker build -q -t nginx:stable "$ctx" >/dev/null
  say "nginx:stable: built"
}

# The classic builder: it needs nothing from a registry (BuildKit would fetch its Dockerfile
# frontend), and it is what every Docker CLI and docker-compose 1.29 can use.
export DOCKER_BUILDKIT=0

docker info >/dev/null 2>&1 || { say "the Docker engine does not answer (docker info)"; exit 1; }

# debian:bookworm-slim is the base of the other two stand-ins as well: when either is to be built,
# it must be there first.
need_node=0 need_nginx=0
available node:20-bookworm-slim || need_node=1
available nginx:stable || need_nginx=1
available debian:bookworm-slim || debian_slim
if [ "$need_node" = 1 ]; then node_slim; fi
if [ "$need_nginx" = 1 ]; then nginx_stable; fi
