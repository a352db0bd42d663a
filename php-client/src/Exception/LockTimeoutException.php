<?php

declare(strict_types=1);

namespace SessionCluster\Exception;

/** Another request held a session's lock for longer than lock_wait_timeout_ms. */
final class LockTimeoutException extends SessionClusterException
{
}
