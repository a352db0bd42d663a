<?php

declare(strict_types=1);

namespace SessionCluster\Exception;

/**
 * No usable session id: the daemon minted none, or answered a reserved-key query in a shape this
 * library does not understand.
 */
final class SessionIdException extends SessionClusterException
{
}
