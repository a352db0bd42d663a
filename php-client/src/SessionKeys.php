<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\SessionIdException;

/**
 * The memcached keys of a session, in php-memcached's layout: data under <prefix><id>, the lock under
 * <prefix>lock.<id>. The daemon takes the session id out of exactly these keys to keep a session
 * and its lock on the same nodes (docs/architecture.md, "Routing key"), and the stock php-memcached handler
 * reads the same keys, so an application can switch between the two.
 */
final class SessionKeys
{
    /** PHP's session id alphabet; the length limit is PHP's (PS_MAX_SID_LENGTH). */
    private const ID_PATTERN = '/^[0-9a-zA-Z,-]{1,256}$/D';

    public function __construct(private readonly string $prefix)
    {
    }

    public static function isWellFormedId(string $id): bool
    {
        return preg_match(self::ID_PATTERN, $id) === 1;
    }

    /** @throws SessionIdException for an id outside PHP's alphabet (it would break the key) */
    public function dataKey(string $id): string
    {
        return $this->prefix . self::checked($id);
    }

    /** @throws SessionIdException */
    public function lockKey(string $id): string
    {
        return $this->prefix . 'lock.' . self::checked($id);
    }

    /**
     * `$text` (a key, a reply line) as messages show it: every run of 16 or more id characters is
     * cut to its first 6. An id is a credential, and logs are not secret.
     */
    public static function shown(string $text): string
    {
        return preg_replace('/([A-Za-z0-9,-]{6})[A-Za-z0-9,-]{10,}/', '$1...', $text) ?? $text;
    }

    private static function checked(string $id): string
    {
        if (!self::isWellFormedId($id)) {
            throw new SessionIdException(sprintf(
                'session id "%s" is not 1 to 256 characters of [0-9a-zA-Z,-]',
                addcslashes(substr($id, 0, 64), "\0..\37\177..\377"),
            ));
        }
        return $id;
    }
}
