<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

use SessionCluster\Exception\TransportException;
use SessionCluster\ServerAddress;

/**
 * The few memcached commands the session handler needs, on one daemon. Values are byte strings
 * stored as they are (flags 0, no compression, no serializer), so every transport reads what any
 * other wrote, and the stock extensions' session handlers read it too.
 *
 * Misses and refusals are ordinary results (null, false); a daemon that cannot be reached, times out
 * or answers outside the protocol throws TransportException.
 *
 * Expiry times are memcached exptimes, passed through unchanged: 0 never expires, up to 30 days is
 * relative, more is an absolute unix time (see Exptime).
 */
interface Transport
{
    public function address(): ServerAddress;

    /** @throws TransportException */
    public function get(string $key): ?string;

    /**
     * Several keys in one round trip.
     *
     * @param list<string> $keys
     * @return array<string, string> the keys that hit, with their values
     * @throws TransportException
     */
    public function getMany(array $keys): array;

    /**
     * Stores only if the key holds nothing: the session lock.
     *
     * @return bool false when the key already holds a value
     * @throws TransportException
     */
    public function add(string $key, string $value, int $exptime): bool;

    /** @throws TransportException also when the daemon does not store it (e.g. a reserved key) */
    public function set(string $key, string $value, int $exptime): void;

    /**
     * @return bool false when the key held nothing
     * @throws TransportException
     */
    public function delete(string $key): bool;

    /** Whether touch() is available (pecl memcache has no touch command). */
    public function supportsTouch(): bool;

    /**
     * Sets a new expiry time without sending the value again.
     *
     * @return bool false when the key held nothing
     * @throws TransportException also when !supportsTouch()
     */
    public function touch(string $key, int $exptime): bool;

    /** Closes the connection; the next command opens a new one. */
    public function close(): void;
}
