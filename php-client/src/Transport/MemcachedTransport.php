<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

use SessionCluster\Exception\TransportException;
use SessionCluster\ServerAddress;
use SessionCluster\SessionKeys;

/**
 * Through php-memcached (ext memcached, libmemcached), binary protocol by default or ascii.
 *
 * Compression is off, so values are stored byte for byte with flags 0; strings never go through
 * the extension's serializer. Keys are sent whole (no OPT_PREFIX_KEY): the handler builds them.
 */
final class MemcachedTransport implements Transport
{
    private \Memcached $memcached;

    public function __construct(
        private readonly ServerAddress $address,
        bool $binaryProtocol = true,
        float $timeoutSeconds = 1.0,
        ?Credentials $credentials = null,
    ) {
        if (!extension_loaded('memcached')) {
            throw new TransportException('transport "memcached" needs the memcached extension (php-memcached), which is not loaded');
        }
        $memcached = new \Memcached();
        $timeoutMs = max(1, (int) round($timeoutSeconds * 1000));
        $memcached->setOptions([
            \Memcached::OPT_BINARY_PROTOCOL => $binaryProtocol,
            \Memcached::OPT_COMPRESSION => false,
            \Memcached::OPT_TCP_NODELAY => true,
            \Memcached::OPT_CONNECT_TIMEOUT => $timeoutMs,
            \Memcached::OPT_POLL_TIMEOUT => $timeoutMs,
            \Memcached::OPT_SEND_TIMEOUT => $timeoutMs * 1000,
            \Memcached::OPT_RECV_TIMEOUT => $timeoutMs * 1000,
        ]);
        $added = $address->isUnixSocket()
            ? $memcached->addServer($address->socketPath, 0)
            : $memcached->addServer($address->host, $address->port);
        if (!$added) {
            throw new TransportException(sprintf('memcached extension refused server %s: %s', $address, $memcached->getResultMessage()));
        }
        // SASL PLAIN on the binary protocol, as the daemon's --auth-file expects.
        if ($credentials !== null && !$memcached->setSaslAuthData($credentials->username, $credentials->password)) {
            throw new TransportException(sprintf('memcached extension refused the credentials for %s: %s', $address, $memcached->getResultMessage()));
        }
        $this->memcached = $memcached;
    }

    public function address(): ServerAddress
    {
        return $this->address;
    }

    public function get(string $key): ?string
    {
        $value = $this->memcached->get($key);
        if ($value === false) {
            if ($this->memcached->getResultCode() === \Memcached::RES_NOTFOUND) {
                return null;
            }
            $this->fail('get', $key);
        }
        return $this->asString($value, $key);
    }

    public function getMany(array $keys): array
    {
        if ($keys === []) {
            return [];
        }
        $values = $this->memcached->getMulti($keys);
        if ($values === false) {
            if ($this->memcached->getResultCode() === \Memcached::RES_NOTFOUND) {
                return [];
            }
            $this->fail('get', implode(' ', $keys));
        }
        $found = [];
        foreach ($values as $key => $value) {
            $found[(string) $key] = $this->asString($value, (string) $key);
        }
        return $found;
    }

    public function add(string $key, string $value, int $exptime): bool
    {
        if ($this->memcached->add($key, $value, $exptime)) {
            return true;
        }
        // ascii answers NOT_STORED, binary "key exists"
        $code = $this->memcached->getResultCode();
        if ($code === \Memcached::RES_NOTSTORED || $code === \Memcached::RES_DATA_EXISTS) {
            return false;
        }
        $this->fail('add', $key);
    }

    public function set(string $key, string $value, int $exptime): void
    {
        if (!$this->memcached->set($key, $value, $exptime)) {
            $this->fail('set', $key);
        }
    }

    public function delete(string $key): bool
    {
        if ($this->memcached->delete($key)) {
            return true;
        }
        if ($this->memcached->getResultCode() === \Memcached::RES_NOTFOUND) {
            return false;
        }
        $this->fail('delete', $key);
    }

    public function supportsTouch(): bool
    {
        return true;
    }

    public function touch(string $key, int $exptime): bool
    {
        if ($this->memcached->touch($key, $exptime)) {
            return true;
        }
        if ($this->memcached->getResultCode() === \Memcached::RES_NOTFOUND) {
            return false;
        }
        $this->fail('touch', $key);
    }

    public function close(): void
    {
        $this->memcached->quit();
    }

    /** Values this library reads are strings; anything else was stored by someone else. */
    private function asString(mixed $value, string $key): string
    {
        if (!is_string($value)) {
            throw new TransportException(sprintf('%s: "%s" holds a %s, not a string (stored with other flags)', $this->address, SessionKeys::shown($key), get_debug_type($value)));
        }
        return $value;
    }

    private function fail(string $command, string $key): never
    {
        throw new TransportException(sprintf(
            '%s: %s "%s" failed: %s (memcached result code %d)',
            $this->address,
            $command,
            SessionKeys::shown($key),
            $this->memcached->getResultMessage(),
            $this->memcached->getResultCode(),
        ));
    }
}
