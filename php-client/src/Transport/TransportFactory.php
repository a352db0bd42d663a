<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

use SessionCluster\Exception\ConfigurationException;
use SessionCluster\ServerAddress;

/** Builds the transport named by the `transport` option. */
final class TransportFactory
{
    public const AUTO = 'auto';
    public const MEMCACHED = 'memcached';
    public const MEMCACHE = 'memcache';
    public const SOCKET = 'socket';

    public const NAMES = [self::AUTO, self::MEMCACHED, self::MEMCACHE, self::SOCKET];

    /** auto: the memcached extension if loaded, else the memcache extension, else plain sockets. */
    public static function resolveName(string $name): string
    {
        if (!in_array($name, self::NAMES, true)) {
            throw new ConfigurationException(sprintf('transport: "%s" is not one of %s', $name, implode(', ', self::NAMES)));
        }
        if ($name !== self::AUTO) {
            return $name;
        }
        if (extension_loaded('memcached')) {
            return self::MEMCACHED;
        }
        return extension_loaded('memcache') ? self::MEMCACHE : self::SOCKET;
    }

    /**
     * @throws ConfigurationException credentials with a transport that cannot send them: pecl
     *   memcache cannot authenticate, and SASL needs the binary protocol
     */
    public static function create(string $name, ServerAddress $address, bool $binaryProtocol, float $timeoutSeconds, ?Credentials $credentials = null): Transport
    {
        $resolved = self::resolveName($name);
        if ($credentials !== null && $resolved === self::MEMCACHE) {
            throw new ConfigurationException('transport "memcache": pecl memcache cannot authenticate; use transport memcached or socket with username and password');
        }
        if ($credentials !== null && $resolved === self::MEMCACHED && !$binaryProtocol) {
            throw new ConfigurationException('transport "memcached" authenticates with SASL, which needs the binary protocol: set binary to true');
        }
        return match ($resolved) {
            self::MEMCACHED => new MemcachedTransport($address, $binaryProtocol, $timeoutSeconds, $credentials),
            self::MEMCACHE => new MemcacheTransport($address, $timeoutSeconds),
            default => new SocketTransport($address, $timeoutSeconds, $credentials),
        };
    }
}
