#!/usr/bin/env bash
# Makes sure the system programs the integration tests drive are installed: PHP 8.2 CLI with the
# pecl `memcache` and `memcached` extensions (the stock session handlers we must serve), real
# memcached (reference server), memccapable/memcaslap (protocol conformance and load), nginx +
# php-fpm (end-to-end web tests), phpunit (php-client tests), openssl (throwaway CAs and
# certificates for the peer TLS tests), faketime (nodes whose wall clock is off, for the
# clock-skew fault scenario), and a Docker engine with Debian's docker-compose and debootstrap
# (the compose examples under docker/; debootstrap builds their base images where no image
# registry is reachable: docker/build-base-images.sh).
#
# `npm test` runs this first. When everything is present it only probes (no apt, about a second).
# Otherwise it installs the Debian packages as root, or through sudo when not root. Last, it makes
# sure a Docker engine answers: when none runs, it starts dockerd in the background and records
# its pid in $DOCKERD_PIDFILE, so that integration/docker.test.ts stops it afterwards (through
# `scripts/docker-engine.sh stop`), and only that one: an engine that was already running is left
# alone.
set -euo pipefail

PACKAGES=(php8.2-cli php8.2-memcache php8.2-memcached memcached libmemcached-tools nginx php8.2-fpm phpunit openssl faketime
          docker.io docker-compose debootstrap)

# Programs in sbin (nginx, php-fpm8.2) are not on a normal user's PATH on Debian, so look there too.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local dir
  for dir in /usr/local/sbin /usr/sbin /sbin; do
    [ -x "$dir/$1" ] && return 0
  done
  return 1
}

missing=()
check_all() {
  missing=()
  if ! have php8.2; then
    missing+=("php8.2 (CLI)")
  else
    # -n would skip the conf.d ini files that load the extensions, so run php as the tests do.
    local ext
    for ext in memcache memcached; do
      if ! php8.2 -r "exit(extension_loaded('$ext') ? 0 : 1);" >/dev/null 2>&1; then
        missing+=("php8.2 extension $ext")
      fi
    done
  fi
  local prog
  for prog in memcached memccapable memcaslap nginx php-fpm8.2 phpunit openssl faketime dockerd docker docker-compose debootstrap; do
    have "$prog" || missing+=("$prog")
  done
}

engine() {
  bash "$(dirname "$0")/docker-engine.sh" start
}

check_all
if [ "${#missing[@]}" -eq 0 ]; then
  engine
  exit 0
fi

echo "install-test-deps: missing: ${missing[*]}" >&2

fail() {
  echo "install-test-deps: $1" >&2
  echo "install-test-deps: still missing: ${missing[*]}" >&2
  echo "install-test-deps: install them with: apt-get install ${PACKAGES[*]}" >&2
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  fail "apt-get not found (these tests expect Debian 12 / bookworm packages)"
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  # Without a terminal nobody can type a password: make sudo fail instead of hanging CI.
  if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
else
  fail "not root and sudo is not installed, so the packages cannot be installed"
fi

echo "install-test-deps: installing ${PACKAGES[*]}" >&2
# `env` carries DEBIAN_FRONTEND through sudo, which would otherwise drop it. The odd expansion
# keeps an empty as_root array legal under `set -u` on older bash.
${as_root[@]+"${as_root[@]}"} apt-get update || fail "apt-get update failed"
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}" \
  || fail "apt-get install failed"

# Trust nothing: a package may install but not provide what the tests need (e.g. PHP's ini not
# enabling an extension).
check_all
if [ "${#missing[@]}" -ne 0 ]; then
  fail "packages installed, but these are still not usable"
fi
echo "install-test-deps: all test dependencies present" >&2
engine
