<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

/** Session locking between two requests on one id, against the single-node daemon. */
final class LockingTest extends DaemonTestCase
{
    private const HOLD_MS = 600;

    public function testASecondReadWaitsUntilTheFirstRequestCloses(): void
    {
        $id = self::createSession(self::handler(), 'step|i:0;');
        $child = self::startPhp(__DIR__ . '/fixtures/hold-lock.php', [
            'options' => TestEnvironment::handlerOptions(TestEnvironment::singleNode()),
            'id' => $id,
            'holdMs' => self::HOLD_MS,
            'data' => 'step|i:1;',
        ]);
        self::assertSame("locked\n", fgets($child['stdout']), 'the other request took the lock');

        $started = hrtime(true);
        $data = self::handler()->read($id);
        $waitedMs = (hrtime(true) - $started) / 1e6;

        $run = self::finishPhp($child);
        self::assertSame(0, $run['exitCode'], $run['stdout'] . $run['stderr']);
        self::assertSame('step|i:1;', $data, 'read after the other request wrote and closed');
        self::assertGreaterThan(self::HOLD_MS * 0.6, $waitedMs);
    }

    public function testAReadGivesUpAfterLockWaitTimeoutAndLeavesTheOtherLockAlone(): void
    {
        $raw = self::transport();
        $holder = self::handler();
        $id = self::createSession($holder, 'a|i:1;');
        self::assertSame('a|i:1;', $holder->read($id));

        $waiter = self::handler(null, ['lock_wait_timeout_ms' => 300]);
        $started = hrtime(true);
        [$data, $errors] = self::collectErrors(static fn () => $waiter->read($id));
        $waitedMs = (hrtime(true) - $started) / 1e6;
        self::assertFalse($data);
        self::assertCount(1, $errors);
        self::assertSame(E_USER_WARNING, $errors[0][0]);
        self::assertStringContainsString('read of session', $errors[0][1]);
        self::assertStringContainsString('the session lock is still held after 300 ms', $errors[0][1]);
        self::assertGreaterThanOrEqual(290, $waitedMs);
        self::assertLessThan(1_500, $waitedMs);
        self::assertTrue($waiter->close());
        self::assertSame('1', $raw->get(self::lockKey($id)), "a request that gave up must not release another's lock");

        self::assertTrue($holder->close());
        self::assertSame('a|i:1;', $waiter->read($id), 'free once the holder closed');
        self::assertTrue($waiter->close());
        self::assertNull($raw->get(self::lockKey($id)));
    }

    public function testALockIsNotLeftBehind(): void
    {
        $raw = self::transport();
        $handler = self::handler(null, ['lock_wait_timeout_ms' => 0]);
        $id = self::createSession($handler, 'a|i:1;');
        self::assertNull($raw->get(self::lockKey($id)), 'after close');

        self::assertSame('a|i:1;', $handler->read($id));
        self::assertTrue($handler->destroy($id));
        self::assertNull($raw->get(self::lockKey($id)), 'after destroy');
        self::assertTrue($handler->close());

        // lock_wait_timeout_ms 0: one try only, so a lock left behind would fail this read.
        $again = self::handler(null, ['lock_wait_timeout_ms' => 0]);
        self::assertSame('', $again->read($id));
        self::assertTrue($again->close());
    }

    /** A request that dies holding the lock blocks its session for lock_expire seconds, no more. */
    public function testAnAbandonedLockExpiresAfterLockExpire(): void
    {
        $id = self::createSession(self::handler(), 'a|i:1;');
        $crashed = self::handler(null, ['lock_expire' => 1]);
        self::assertSame('a|i:1;', $crashed->read($id));
        unset($crashed); // never closed

        $started = hrtime(true);
        $next = self::handler(null, ['lock_wait_timeout_ms' => 5_000]);
        self::assertSame('a|i:1;', $next->read($id));
        self::assertLessThan(2_500, (hrtime(true) - $started) / 1e6);
        self::assertTrue($next->close());
    }

    /** php-memcached's session handler takes the same lock key: the two exclude each other. */
    public function testTheLockIsPhpMemcachedsLockKey(): void
    {
        $handler = self::handler();
        $id = self::createSession($handler, 'a|i:1;');
        self::assertSame('a|i:1;', $handler->read($id));
        self::assertFalse(self::transport()->add('memc.sess.key.lock.' . $id, '1', 30));
        self::assertTrue($handler->close());
        // Taken and released on one connection, as a request does: the daemon releases a lock
        // whose connection closes without releasing it.
        $holder = self::transport();
        self::assertTrue($holder->add('memc.sess.key.lock.' . $id, '1', 30));
        self::assertTrue($holder->delete('memc.sess.key.lock.' . $id));
    }
}
