<?php

declare(strict_types=1);

namespace SessionCluster\Exception;

/**
 * The daemon could not be reached, timed out, refused a command, or answered something that is
 * not the memcached protocol.
 */
final class TransportException extends SessionClusterException
{
}
