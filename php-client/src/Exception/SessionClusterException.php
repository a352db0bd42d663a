<?php

declare(strict_types=1);

namespace SessionCluster\Exception;

/**
 * Base of every exception this library throws, so an application can catch them all at once.
 */
abstract class SessionClusterException extends \RuntimeException
{
}
