<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

use SessionCluster\Exception\TransportException;
use SessionCluster\ServerAddress;
use SessionCluster\SessionKeys;

/**
 * Through pecl memcache (ext memcache, ascii protocol).
 *
 * pecl memcache answers false (or an empty array) both for a miss and for a dead server. The
 * two are told apart by its failure callback, which it calls when a connection fails, and by
 * getServerStatus(), which stays 0 while the server is marked failed (it then skips the server
 * without calling back). Automatic compression (memcache.compress_threshold) is turned off so
 * values are stored byte for byte. pecl memcache has no touch command.
 */
final class MemcacheTransport implements Transport
{
    /** null until the first command, and again after close(), which empties pecl memcache's pool */
    private ?\Memcache $memcache = null;
    private ?string $lastFailure = null;

    public function __construct(
        private readonly ServerAddress $address,
        private readonly float $timeoutSeconds = 1.0,
    ) {
        if (!extension_loaded('memcache')) {
            throw new TransportException('transport "memcache" needs the memcache extension (pecl memcache), which is not loaded');
        }
    }

    public function address(): ServerAddress
    {
        return $this->address;
    }

    public function get(string $key): ?string
    {
        return $this->getMany([$key])[$key] ?? null;
    }

    public function getMany(array $keys): array
    {
        if ($keys === []) {
            return [];
        }
        $this->lastFailure = null;
        $flags = [];
        $values = @$this->memcache()->get($keys, $flags);
        if (!is_array($values)) {
            $this->fail('get', implode(' ', $keys));
        }
        if ($values === [] && !$this->serverAlive()) {
            $this->fail('get', implode(' ', $keys));
        }
        $found = [];
        foreach ($values as $key => $value) {
            if (!is_string($value)) {
                throw new TransportException(sprintf('%s: "%s" holds a %s, not a string (stored with other flags)', $this->address, SessionKeys::shown($key), get_debug_type($value)));
            }
            $found[(string) $key] = $value;
        }
        return $found;
    }

    public function add(string $key, string $value, int $exptime): bool
    {
        $this->lastFailure = null;
        if (@$this->memcache()->add($key, $value, 0, $exptime)) {
            return true;
        }
        if (!$this->serverAlive()) {
            $this->fail('add', $key);
        }
        return false;
    }

    public function set(string $key, string $value, int $exptime): void
    {
        $this->lastFailure = null;
        if (!@$this->memcache()->set($key, $value, 0, $exptime)) {
            $this->fail('set', $key);
        }
    }

    public function delete(string $key): bool
    {
        $this->lastFailure = null;
        if (@$this->memcache()->delete($key)) {
            return true;
        }
        if (!$this->serverAlive()) {
            $this->fail('delete', $key);
        }
        return false;
    }

    public function supportsTouch(): bool
    {
        return false;
    }

    public function touch(string $key, int $exptime): bool
    {
        throw new TransportException('pecl memcache has no touch command; write the value again instead');
    }

    public function close(): void
    {
        if ($this->memcache !== null) {
            @$this->memcache->close();
            $this->memcache = null;
        }
    }

    private function memcache(): \Memcache
    {
        if ($this->memcache !== null) {
            return $this->memcache;
        }
        $memcache = new DynamicPropertiesMemcache();
        $onFailure = function (string $host, int $tcpPort, int $udpPort, string $error, int $errno): void {
            $this->lastFailure = sprintf('%s (%d)', $error, $errno);
        };
        // retry_interval 1 s: a failed server is skipped (without calling back) for that long.
        $address = $this->address;
        $added = $address->isUnixSocket()
            ? $memcache->addServer($address->uri(), 0, false, 1, $this->timeoutSeconds, 1, true, $onFailure)
            : $memcache->addServer($address->host, $address->port, false, 1, $this->timeoutSeconds, 1, true, $onFailure);
        if (!$added) {
            throw new TransportException(sprintf('memcache extension refused server %s', $address));
        }
        $memcache->setCompressThreshold(0, 0);
        return $this->memcache = $memcache;
    }

    private function serverAlive(): bool
    {
        if ($this->lastFailure !== null) {
            return false;
        }
        $status = $this->address->isUnixSocket()
            ? @$this->memcache()->getServerStatus($this->address->uri(), 0)
            : @$this->memcache()->getServerStatus($this->address->host, $this->address->port);
        return $status !== 0 && $status !== false;
    }

    private function fail(string $command, string $key): never
    {
        $reason = $this->lastFailure ?? ($this->serverAlive() ? 'the daemon did not store it' : 'server marked failed');
        throw new TransportException(sprintf('%s: %s "%s" failed: %s', $this->address, $command, SessionKeys::shown($key), $reason));
    }
}
