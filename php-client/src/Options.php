<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\ConfigurationException;
use SessionCluster\Transport\Credentials;
use SessionCluster\Transport\TransportFactory;

/**
 * The handler's settings, checked once. Unknown option names are refused, so a typo does not
 * silently fall back to a default.
 */
final class Options
{
    /** php-memcached's memcached.sess_prefix default; the daemon finds session ids behind it. */
    public const DEFAULT_PREFIX = 'memc.sess.key.';

    private const KNOWN = [
        'server', 'transport', 'binary', 'timeout_ms', 'prefix', 'lock_expire', 'lock_wait_timeout_ms',
        'ttl', 'moved_marker_ttl', 'username', 'password',
    ];

    private function __construct(
        public readonly ServerAddress $server,
        /** auto, memcached, memcache or socket */
        public readonly string $transport,
        /** memcached transport only: binary protocol (true) or ascii */
        public readonly bool $binary,
        /** connect and I/O timeout towards the daemon */
        public readonly int $timeoutMs,
        public readonly string $prefix,
        /** seconds a lock lives if its holder never releases it (a crashed request) */
        public readonly int $lockExpire,
        public readonly int $lockWaitTimeoutMs,
        /** seconds a session lives after its last write or touch; null: session.gc_maxlifetime when written */
        public readonly ?int $ttl,
        /** seconds the old id of a re-homed session keeps pointing at the new one */
        public readonly int $movedMarkerTtl,
        /** a user of the daemon's --auth-file (options username and password), or null */
        public readonly ?Credentials $credentials = null,
    ) {
    }

    /**
     * @param array<string, mixed> $options
     * @throws ConfigurationException
     */
    public static function fromArray(array $options): self
    {
        $unknown = array_diff(array_keys($options), self::KNOWN);
        if ($unknown !== []) {
            throw new ConfigurationException(sprintf('unknown option(s): %s (known: %s)', implode(', ', $unknown), implode(', ', self::KNOWN)));
        }
        $server = $options['server'] ?? null;
        $server = match (true) {
            $server instanceof ServerAddress => $server,
            is_string($server) => ServerAddress::parse($server),
            $server === null => ServerAddress::fromSavePath((string) ini_get('session.save_path')),
            default => throw new ConfigurationException('server: expected an address string'),
        };
        $transport = self::string($options, 'transport', TransportFactory::AUTO);
        TransportFactory::resolveName($transport); // refuses unknown names now, not at first use
        $prefix = self::string($options, 'prefix', self::DEFAULT_PREFIX);
        if (preg_match('/[\x00-\x20\x7f]/', $prefix) === 1) {
            throw new ConfigurationException('prefix: must not contain spaces or control characters');
        }
        $maxExecutionTime = (int) ini_get('max_execution_time');

        return new self(
            server: $server,
            transport: $transport,
            binary: self::bool($options, 'binary', true),
            timeoutMs: self::int($options, 'timeout_ms', 1000, 1),
            prefix: $prefix,
            lockExpire: self::int($options, 'lock_expire', $maxExecutionTime > 0 ? $maxExecutionTime : 30, 1),
            lockWaitTimeoutMs: self::int($options, 'lock_wait_timeout_ms', 10_000, 0),
            ttl: array_key_exists('ttl', $options) ? self::int($options, 'ttl', 0, 0) : null,
            movedMarkerTtl: self::int($options, 'moved_marker_ttl', 300, 1),
            credentials: self::credentials($options),
        );
    }

    /** The session lifetime in seconds, as of now. */
    public function sessionTtl(): int
    {
        return $this->ttl ?? max(0, (int) ini_get('session.gc_maxlifetime'));
    }

    /**
     * username and password, both or neither.
     *
     * @param array<string, mixed> $options
     */
    private static function credentials(array $options): ?Credentials
    {
        $given = array_intersect(['username', 'password'], array_keys($options));
        if ($given === []) {
            return null;
        }
        if (count($given) === 1) {
            throw new ConfigurationException('username and password: give both (a user of the daemon\'s --auth-file) or neither');
        }
        $username = self::string($options, 'username', '');
        $password = $options['password'];
        if (!is_string($password) || $password === '') {
            throw new ConfigurationException('password: expected a non-empty string');
        }
        if (str_contains($username, ' ')) {
            throw new ConfigurationException('username: must not contain a space');
        }
        return new Credentials($username, $password);
    }

    /** @param array<string, mixed> $options */
    private static function string(array $options, string $name, string $default): string
    {
        $value = $options[$name] ?? $default;
        if (!is_string($value) || ($value === '' && $name !== 'prefix')) {
            throw new ConfigurationException(sprintf('%s: expected a non-empty string', $name));
        }
        return $value;
    }

    /** @param array<string, mixed> $options */
    private static function int(array $options, string $name, int $default, int $min): int
    {
        $value = $options[$name] ?? $default;
        if (is_string($value) && preg_match('/^[0-9]+$/D', $value) === 1) {
            $value = (int) $value; // values read from ini files or the environment
        }
        if (!is_int($value) || $value < $min) {
            throw new ConfigurationException(sprintf('%s: expected an integer >= %d, got %s', $name, $min, var_export($value, true)));
        }
        return $value;
    }

    /** @param array<string, mixed> $options */
    private static function bool(array $options, string $name, bool $default): bool
    {
        $value = $options[$name] ?? $default;
        if (!is_bool($value)) {
            throw new ConfigurationException(sprintf('%s: expected true or false', $name));
        }
        return $value;
    }
}
