<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\ConfigurationException;

/**
 * Where the local daemon listens: a TCP host and port, or a unix socket path.
 *
 * Accepted spellings (the first two are what session.save_path holds for php-memcached and
 * pecl memcache, so one php.ini line can serve either):
 *
 *     127.0.0.1:11211    host:port (IPv6 in brackets: [::1]:11211)
 *     tcp://host:port    a query string after it (pecl memcache's ?persistent=1) is ignored
 *     unix:///path       a unix socket
 *     /path/to.sock      a unix socket: only when the path ends in ".sock" or is a socket file,
 *                        because Debian's default session.save_path is a directory
 *                        (/var/lib/php/sessions) that must not be mistaken for one
 */
final class ServerAddress
{
    public const DEFAULT = '127.0.0.1:11211';

    private function __construct(
        /** "" for a unix socket */
        public readonly string $host,
        /** 0 for a unix socket */
        public readonly int $port,
        /** "" for TCP */
        public readonly string $socketPath,
    ) {
    }

    public static function tcp(string $host, int $port): self
    {
        if ($host === '' || $port < 1 || $port > 65535) {
            throw new ConfigurationException(sprintf('server: "%s:%d" is not a TCP address (host, port 1..65535)', $host, $port));
        }
        return new self($host, $port, '');
    }

    public static function unixSocket(string $path): self
    {
        if ($path === '' || $path[0] !== '/') {
            throw new ConfigurationException(sprintf('server: unix socket path "%s" must be absolute', $path));
        }
        return new self('', 0, $path);
    }

    /** @throws ConfigurationException when $address is none of the accepted spellings */
    public static function parse(string $address): self
    {
        $parsed = self::tryParse(trim($address));
        if ($parsed === null) {
            throw new ConfigurationException(sprintf(
                'server: "%s" is not an address (expected host:port, tcp://host:port, unix:///path or /path/to.sock)',
                $address,
            ));
        }
        return $parsed;
    }

    /**
     * The daemon named by session.save_path when it holds an address, else 127.0.0.1:11211 (the
     * daemon's default). A save path of another kind (a directory, a list of servers) is ignored.
     */
    public static function fromSavePath(string $savePath): self
    {
        return self::tryParse(trim($savePath)) ?? self::parse(self::DEFAULT);
    }

    public function isUnixSocket(): bool
    {
        return $this->socketPath !== '';
    }

    /** The address in stream_socket_client()'s spelling, also used in every error message. */
    public function uri(): string
    {
        if ($this->isUnixSocket()) {
            return 'unix://' . $this->socketPath;
        }
        $host = str_contains($this->host, ':') ? '[' . $this->host . ']' : $this->host;
        return sprintf('tcp://%s:%d', $host, $this->port);
    }

    public function __toString(): string
    {
        return $this->uri();
    }

    private static function tryParse(string $address): ?self
    {
        if (str_starts_with($address, 'unix://')) {
            $path = self::withoutQuery(substr($address, strlen('unix://')));
            return $path !== '' && $path[0] === '/' ? new self('', 0, $path) : null;
        }
        if ($address !== '' && $address[0] === '/') {
            $looksLikeSocket = str_ends_with($address, '.sock') || @filetype($address) === 'socket';
            return $looksLikeSocket ? new self('', 0, $address) : null;
        }
        if (str_starts_with($address, 'tcp://')) {
            $address = self::withoutQuery(substr($address, strlen('tcp://')));
        }
        if (preg_match('/^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/D', $address, $m) !== 1) {
            return null;
        }
        $port = (int) $m[3];
        if ($port < 1 || $port > 65535) {
            return null;
        }
        return new self($m[1] !== '' ? $m[1] : $m[2], $port, '');
    }

    private static function withoutQuery(string $rest): string
    {
        $query = strpos($rest, '?');
        return $query === false ? $rest : substr($rest, 0, $query);
    }
}
