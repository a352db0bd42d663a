<?php

declare(strict_types=1);

namespace SessionCluster;

/**
 * memcached's exptime (protocol.txt, "Expiration times"): 0 never expires, up to 30 days is a
 * number of seconds from now, anything larger is an absolute unix time. A session lifetime of more
 * than 30 days must therefore be sent as now + lifetime, or it would be read as a date in 1970 and
 * the item would expire at once.
 */
final class Exptime
{
    public const MAX_RELATIVE_SECONDS = 60 * 60 * 24 * 30;

    public static function fromLifetime(int $seconds, ?int $now = null): int
    {
        if ($seconds <= self::MAX_RELATIVE_SECONDS) {
            return $seconds;
        }
        return ($now ?? time()) + $seconds;
    }
}
