# php-fpm 8.2 with both stock session extensions, from Debian 12's own packages (the versions
# the integration tests run: php8.2-memcached 3.2.0, php8.2-memcache). Build context: docker/.
# Where no registry is reachable, docker/build-base-images.sh builds a local debian:bookworm-slim.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends php8.2-fpm php8.2-memcached php8.2-memcache \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/php
COPY php-fpm-pool.conf /etc/php/8.2/fpm/pool.d/zz-docker.conf
COPY php-session.ini /etc/php/8.2/fpm/conf.d/90-session-cluster.ini
EXPOSE 9000
# Foreground, logs on stderr (-F --nodaemonize, -O --force-stderr).
CMD ["php-fpm8.2", "--nodaemonize", "--force-stderr"]
