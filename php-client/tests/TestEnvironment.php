<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\ServerAddress;
use SessionCluster\Transport\Transport;
use SessionCluster\Transport\TransportFactory;

/**
 * Where the daemons are and which transport to test, from the environment the vitest wrapper
 * (integration/php-client.test.ts) sets. A missing variable fails the test that needs it: a suite
 * that quietly skipped its daemon tests would prove nothing.
 */
final class TestEnvironment
{
    /** @return array{transport: string, binary: bool} the handler options for SESSION_CLUSTER_TRANSPORT */
    public static function transportOptions(): array
    {
        $name = self::required('SESSION_CLUSTER_TRANSPORT');
        return match ($name) {
            'memcached' => ['transport' => TransportFactory::MEMCACHED, 'binary' => true],
            'memcached-ascii' => ['transport' => TransportFactory::MEMCACHED, 'binary' => false],
            'memcache' => ['transport' => TransportFactory::MEMCACHE, 'binary' => true],
            'socket' => ['transport' => TransportFactory::SOCKET, 'binary' => true],
            default => throw new \RuntimeException("SESSION_CLUSTER_TRANSPORT=$name: expected memcached, memcached-ascii, memcache or socket"),
        };
    }

    /** host:port of the single-node daemon */
    public static function singleNode(): string
    {
        return self::required('SESSION_CLUSTER_SINGLE');
    }

    /** host:port of a single-node daemon started with --auth-file, whose user is authUser() */
    public static function authNode(): string
    {
        return self::required('SESSION_CLUSTER_AUTH');
    }

    /** @return array{username: string, password: string} a user of that daemon's --auth-file */
    public static function authUser(): array
    {
        return ['username' => self::required('SESSION_CLUSTER_AUTH_USER'), 'password' => self::required('SESSION_CLUSTER_AUTH_PASSWORD')];
    }

    /** unix:///path of the single-node daemon's socket */
    public static function singleNodeSocket(): string
    {
        return 'unix://' . self::required('SESSION_CLUSTER_SINGLE_SOCKET');
    }

    /** @return list<string> host:port of each node of the 3-node cluster, node 1 first */
    public static function clusterNodes(): array
    {
        $nodes = explode(',', self::required('SESSION_CLUSTER_NODES'));
        if (count($nodes) < 3) {
            throw new \RuntimeException('SESSION_CLUSTER_NODES must name 3 nodes');
        }
        return $nodes;
    }

    /**
     * Handler options for $server with the transport under test.
     *
     * @param array<string, mixed> $extra
     * @return array<string, mixed>
     */
    public static function handlerOptions(string $server, array $extra = []): array
    {
        return ['server' => $server] + $extra + self::transportOptions();
    }

    public static function transport(string $server): Transport
    {
        $options = self::transportOptions();
        return TransportFactory::create($options['transport'], ServerAddress::parse($server), $options['binary'], 2.0);
    }

    /** A TCP address nothing listens on (the kernel picked the port, and it was released). */
    public static function deadAddress(): string
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        if ($server === false) {
            throw new \RuntimeException('cannot bind a loopback port');
        }
        $address = stream_socket_get_name($server, false);
        fclose($server);
        return (string) $address;
    }

    private static function required(string $name): string
    {
        $value = getenv($name);
        if ($value === false || $value === '') {
            throw new \RuntimeException("$name is not set: run the suite through integration/php-client.test.ts (npx vitest run integration/php-client.test.ts), or set it by hand");
        }
        return $value;
    }
}
