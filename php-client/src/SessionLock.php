<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\LockTimeoutException;
use SessionCluster\Exception\SessionClusterException;
use SessionCluster\Transport\Transport;

/**
 * One session's lock: `add <prefix>lock.<id>` succeeds for exactly one request (the daemon's
 * master decides it alone, so it is atomic cluster-wide); the holder deletes the key to release it.
 * The key expires after lock_expire seconds, so a request that dies holding it blocks the session
 * no longer than that. php-memcached's own session handler locks the same key, so both
 * handlers exclude each other on one session.
 */
final class SessionLock
{
    private const FIRST_WAIT_MS = 5;
    private const LONGEST_WAIT_MS = 100;

    public function __construct(
        private readonly Transport $transport,
        private readonly SessionKeys $keys,
        private readonly int $expireSeconds,
        private readonly int $waitTimeoutMs,
    ) {
    }

    /**
     * Tries at once, then again after 5, 10, 20, ... up to 100 ms between tries, until
     * lock_wait_timeout_ms have passed.
     *
     * @throws LockTimeoutException
     * @throws SessionClusterException when the daemon cannot be asked
     */
    public function acquire(string $id): void
    {
        $key = $this->keys->lockKey($id);
        $exptime = Exptime::fromLifetime($this->expireSeconds);
        $deadline = hrtime(true) + $this->waitTimeoutMs * 1_000_000;
        $waitMs = self::FIRST_WAIT_MS;
        while (!$this->transport->add($key, '1', $exptime)) {
            $left = intdiv($deadline - hrtime(true), 1_000_000);
            if ($left <= 0) {
                throw new LockTimeoutException(sprintf(
                    '%s: the session lock is still held after %d ms (lock_wait_timeout_ms); another request holds it',
                    $this->transport->address(),
                    $this->waitTimeoutMs,
                ));
            }
            usleep(min($waitMs, $left) * 1000);
            $waitMs = min($waitMs * 2, self::LONGEST_WAIT_MS);
        }
    }

    /** @throws SessionClusterException */
    public function release(string $id): void
    {
        $this->transport->delete($this->keys->lockKey($id));
    }
}
