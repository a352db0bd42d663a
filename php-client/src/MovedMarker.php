<?php

declare(strict_types=1);

namespace SessionCluster;

/**
 * What the data key of a re-homed session holds for moved_marker_ttl seconds after the re-home:
 * "\0session-cluster:moved:" and the new id. A request that still carries the old id (sent before
 * the browser got the new cookie) finds it and continues with the new id instead of an empty
 * session. The leading NUL byte keeps it apart from anything PHP's session serializers write.
 */
final class MovedMarker
{
    public const PREFIX = "\0session-cluster:moved:";

    public static function pointingTo(string $newId): string
    {
        return self::PREFIX . $newId;
    }

    /** The new id when $data is a moved-marker, null when it is session data. */
    public static function target(string $data): ?string
    {
        if (!str_starts_with($data, self::PREFIX)) {
            return null;
        }
        $id = substr($data, strlen(self::PREFIX));
        return SessionKeys::isWellFormedId($id) ? $id : null;
    }

    public static function isMarker(string $data): bool
    {
        return str_starts_with($data, self::PREFIX);
    }
}
