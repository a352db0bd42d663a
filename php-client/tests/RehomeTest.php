<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\MovedMarker;
use SessionCluster\SessionHandler;

/**
 * Re-homing a failed-over session: validateId refuses the old id, create_sid moves the session to a
 * new id minted here. The failover itself is staged (FailedOverOwners answers the owners query);
 * minting, locks and data moves run against the real single-node daemon.
 */
final class RehomeTest extends DaemonTestCase
{
    /** A request carrying $oldId, on a handler that sees $oldId as failed over. */
    private static function failedOverHandler(string $oldId, array $options = []): SessionHandler
    {
        return self::handler(null, $options, new FailedOverOwners(self::authority(), [$oldId]));
    }

    public function testMovesTheDataToANewIdAndLeavesAMovedMarker(): void
    {
        $raw = self::transport();
        $oldId = self::createSession(self::handler(), 'user|s:5:"alice";');

        $handler = self::failedOverHandler($oldId);
        self::assertTrue($handler->open('', 'PHPSESSID'));
        self::assertFalse($handler->validateId($oldId), 'a failed-over id is refused, so PHP asks create_sid');
        $newId = $handler->create_sid();
        self::assertNotSame($oldId, $newId);
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $newId);
        self::assertSame('user|s:5:"alice";', $handler->read($newId), 'the data came along');
        self::assertTrue($handler->write($newId, 'user|s:5:"alice";step|i:2;'));
        self::assertTrue($handler->close());

        self::assertSame(MovedMarker::pointingTo($newId), $raw->get(self::dataKey($oldId)));
        self::assertNull($raw->get(self::lockKey($oldId)), 'the old lock was released');
        self::assertNull($raw->get(self::lockKey($newId)));

        // The daemon minted the replacement as one: here, revision + 1.
        $authority = self::authority();
        $owners = $authority->owners($newId);
        self::assertSame($authority->nodeId(), $owners->namedMaster);
        self::assertSame($authority->owners($oldId)->revision + 1, $owners->revision);
        // For everyone but the staged failover, the new id is an ordinary minted id.
        self::assertTrue(self::handler()->validateId($newId));
    }

    public function testARequestStillCarryingTheOldIdFollowsTheMarker(): void
    {
        $oldId = self::createSession(self::handler(), 'a|i:1;');
        $first = self::failedOverHandler($oldId);
        self::assertFalse($first->validateId($oldId));
        $newId = $first->create_sid();
        self::assertSame('a|i:1;', $first->read($newId));
        self::assertTrue($first->write($newId, 'a|i:2;'));
        self::assertTrue($first->close());

        $second = self::failedOverHandler($oldId);
        self::assertFalse($second->validateId($oldId));
        self::assertSame($newId, $second->create_sid(), 'the same new id, not a second re-home');
        self::assertSame('a|i:2;', $second->read($newId));
        self::assertTrue($second->close());
    }

    /** The re-home takes the old id's lock: a request still working on the old id finishes first. */
    public function testWaitsForTheOldIdsLockAndCarriesItsLastWrite(): void
    {
        $oldId = self::createSession(self::handler(), 'step|i:1;');
        $child = self::startPhp(__DIR__ . '/fixtures/hold-lock.php', [
            'options' => TestEnvironment::handlerOptions(TestEnvironment::singleNode()),
            'id' => $oldId,
            'holdMs' => 500,
            'data' => 'step|i:2;',
        ]);
        self::assertSame("locked\n", fgets($child['stdout']));

        $handler = self::failedOverHandler($oldId);
        self::assertFalse($handler->validateId($oldId));
        $newId = $handler->create_sid();
        $run = self::finishPhp($child);
        self::assertSame(0, $run['exitCode'], $run['stdout'] . $run['stderr']);
        self::assertSame('step|i:2;', $handler->read($newId), 'the write made under the old lock');
        self::assertTrue($handler->close());
    }

    public function testASessionWithoutDataGetsANewIdAndNothingElse(): void
    {
        $raw = self::transport();
        $oldId = self::authority()->mint(); // never written, or expired
        $handler = self::failedOverHandler($oldId);
        self::assertFalse($handler->validateId($oldId));
        $newId = $handler->create_sid();
        self::assertNotSame($oldId, $newId);
        self::assertNull($raw->get(self::dataKey($newId)), 'no empty item is invented');
        self::assertSame(MovedMarker::pointingTo($newId), $raw->get(self::dataKey($oldId)), 'concurrent requests still agree on one id');
        self::assertSame('', $handler->read($newId));
        self::assertTrue($handler->close());
    }

    public function testTheMovedMarkerExpiresAfterMovedMarkerTtl(): void
    {
        $raw = self::transport();
        $oldId = self::createSession(self::handler(), 'a|i:1;');
        $handler = self::failedOverHandler($oldId, ['moved_marker_ttl' => 1]);
        self::assertFalse($handler->validateId($oldId));
        $newId = $handler->create_sid();
        self::assertSame(MovedMarker::pointingTo($newId), $raw->get(self::dataKey($oldId)));
        usleep(2_200_000);
        self::assertNull($raw->get(self::dataKey($oldId)));
        self::assertSame('a|i:1;', $raw->get(self::dataKey($newId)), 'the session itself lives on');
    }

    /** Only the create_sid right after a refused failed-over id re-homes; any other mints afresh. */
    public function testAnOrdinaryCreateSidAfterwardsMintsANewSession(): void
    {
        $oldId = self::createSession(self::handler(), 'a|i:1;');
        $handler = self::failedOverHandler($oldId);
        self::assertFalse($handler->validateId($oldId));
        $newId = $handler->create_sid();
        $other = $handler->create_sid();
        self::assertNotSame($newId, $other);
        self::assertNull(self::transport()->get(self::dataKey($other)));
        self::assertTrue(self::handler()->validateId($oldId), 'the staging applies only to the handler it is given to');
    }
}
