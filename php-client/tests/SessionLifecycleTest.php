<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\MovedMarker;

/** The handler called directly, in the order PHP calls it, against the single-node daemon. */
final class SessionLifecycleTest extends DaemonTestCase
{
    public function testCreateReadWriteTouchDestroy(): void
    {
        $raw = self::transport();

        // First request: no id yet.
        $first = self::handler();
        self::assertTrue($first->open('', 'PHPSESSID'));
        $id = $first->create_sid();
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $id);
        self::assertSame('', $first->read($id));
        self::assertSame('1', $raw->get(self::lockKey($id)), 'read holds the lock');
        self::assertTrue($first->write($id, 'user|s:5:"alice";'));
        self::assertTrue($first->close());
        self::assertNull($raw->get(self::lockKey($id)), 'close released the lock');
        self::assertSame('user|s:5:"alice";', $raw->get(self::dataKey($id)), "php-memcached's key layout");

        // Second request with that id (strict mode: validateId first).
        $second = self::handler();
        self::assertTrue($second->open('', 'PHPSESSID'));
        self::assertTrue($second->validateId($id));
        self::assertSame('user|s:5:"alice";', $second->read($id));
        self::assertTrue($second->write($id, 'user|s:5:"alice";visits|i:2;'));
        self::assertTrue($second->close());

        // Third request: unchanged data, lazy_write touches instead of writing.
        $third = self::handler();
        self::assertTrue($third->validateId($id));
        self::assertSame('user|s:5:"alice";visits|i:2;', $third->read($id));
        self::assertTrue($third->updateTimestamp($id, 'user|s:5:"alice";visits|i:2;'));
        self::assertSame(0, $third->gc(1440));
        self::assertTrue($third->destroy($id));
        self::assertTrue($third->close());
        self::assertNull($raw->get(self::dataKey($id)));
        self::assertNull($raw->get(self::lockKey($id)), 'destroy removed the lock');

        // An expired or destroyed session's id stays a minted id: it reads as a new, empty session.
        $fourth = self::handler();
        self::assertTrue($fourth->validateId($id));
        self::assertSame('', $fourth->read($id));
        self::assertTrue($fourth->close());
    }

    public function testUpdateTimestampWritesBackAnItemThatExpiredMeanwhile(): void
    {
        $handler = self::handler();
        $id = self::authority()->mint();
        self::assertSame('', $handler->read($id));
        self::assertTrue($handler->updateTimestamp($id, 'a|i:1;'));
        self::assertTrue($handler->close());
        self::assertSame('a|i:1;', self::transport()->get(self::dataKey($id)));
    }

    /**
     * Lifetimes: written with ttl, renewed by updateTimestamp. The daemon's clock ticks in whole
     * seconds, so the margins are a second or more.
     */
    public function testSessionsExpireAfterTtlAndUpdateTimestampRenewsIt(): void
    {
        $raw = self::transport();
        $handler = self::handler(null, ['ttl' => 3]);
        $renewed = self::createSession($handler, 'a|i:1;');
        $left = self::createSession($handler, 'b|i:1;');
        usleep(1_500_000);
        self::assertTrue($handler->updateTimestamp($renewed, 'a|i:1;'));
        usleep(2_200_000); // 3.7 s after the write, 2.2 s after the renewal
        self::assertNull($raw->get(self::dataKey($left)), 'expired 3 s after its write');
        self::assertSame('a|i:1;', $raw->get(self::dataKey($renewed)), 'renewed by updateTimestamp');
    }

    /** memcached reads an exptime above 30 days as a unix time: a long ttl must not expire at once. */
    public function testATtlAbove30DaysIsSentAsAnAbsoluteTime(): void
    {
        $handler = self::handler(null, ['ttl' => 40 * 86400]);
        $id = self::createSession($handler, 'a|i:1;');
        self::assertSame('a|i:1;', self::transport()->get(self::dataKey($id)));
        self::assertTrue($handler->updateTimestamp($id, 'a|i:1;'));
        self::assertSame('a|i:1;', self::transport()->get(self::dataKey($id)));
    }

    public function testReadingTheSameIdTwiceKeepsTheLockItHolds(): void
    {
        $handler = self::handler(null, ['lock_wait_timeout_ms' => 200]);
        $id = self::createSession($handler, 'a|i:1;');
        self::assertSame('a|i:1;', $handler->read($id));
        self::assertSame('a|i:1;', $handler->read($id), 'no wait for its own lock');
        self::assertTrue($handler->close());
        self::assertNull(self::transport()->get(self::lockKey($id)));
    }

    public function testAMovedMarkerReadsAsAnEmptySessionWithANotice(): void
    {
        $id = self::authority()->mint();
        $newId = self::authority()->mint();
        self::transport()->set(self::dataKey($id), MovedMarker::pointingTo($newId), 60);
        $handler = self::handler();
        [$data, $errors] = self::collectErrors(static fn () => $handler->read($id));
        self::assertSame('', $data);
        self::assertCount(1, $errors);
        self::assertSame(E_USER_NOTICE, $errors[0][0]);
        self::assertStringContainsString('re-homed to ' . substr($newId, 0, 6) . '...', $errors[0][1]);
        self::assertStringNotContainsString($id, $errors[0][1], 'ids are credentials: never whole in a message');
        self::assertTrue($handler->close());
    }

    public function testFailuresWarnWithTheDaemonAddressAndAnswerFalse(): void
    {
        $dead = TestEnvironment::deadAddress();
        $handler = self::handler($dead);
        $id = bin2hex(random_bytes(16));
        $calls = [
            'read' => static fn () => $handler->read($id),
            'write' => static fn () => $handler->write($id, 'x'),
            'timestamp update' => static fn () => $handler->updateTimestamp($id, 'x'),
            'destroy' => static fn () => $handler->destroy($id),
        ];
        foreach ($calls as $what => $call) {
            [$result, $errors] = self::collectErrors($call);
            self::assertFalse($result, $what);
            self::assertCount(1, $errors, $what);
            self::assertSame(E_USER_WARNING, $errors[0][0]);
            self::assertStringStartsWith("session-cluster: $what of session " . substr($id, 0, 6) . "... failed (daemon tcp://$dead): ", $errors[0][1]);
        }
        self::assertTrue($handler->close(), 'no lock held, nothing to release');
    }

    public function testAMalformedIdIsRefusedBeforeItReachesAKey(): void
    {
        $handler = self::handler();
        foreach (['read' => static fn () => $handler->read("a b\r\nflush_all"), 'write' => static fn () => $handler->write('a b', 'x')] as $what => $call) {
            [$result, $errors] = self::collectErrors($call);
            self::assertFalse($result, $what);
            self::assertStringContainsString('is not 1 to 256 characters of [0-9a-zA-Z,-]', $errors[0][1] ?? '', $what);
        }
    }
}
