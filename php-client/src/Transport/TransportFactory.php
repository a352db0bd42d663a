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

    public static function create(string $name, ServerAddress $address, bool $binaryProtocol, float $timeoutSeconds): Transport
    {
        return match (self::resolveName($name)) {
            self::MEMCACHED => new MemcachedTransport($address, $binaryProtocol, $timeoutSeconds),
            self::MEMCACHE => new MemcacheTransport($address, $timeoutSeconds),
            default => new SocketTransport($address, $timeoutSeconds),
        };
    }
}
