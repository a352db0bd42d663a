<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

/** Minting and strict-mode validation against the single-node daemon. */
final class SessionIdTest extends DaemonTestCase
{
    public function testMintsDistinctIdsOfTheDocumentedShape(): void
    {
        $handler = self::handler();
        $ids = [];
        for ($i = 0; $i < 200; $i++) {
            $ids[] = $handler->create_sid();
        }
        foreach ($ids as $id) {
            self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $id);
        }
        self::assertCount(200, array_unique($ids));
    }

    public function testTheMinterIsMasterAndNamedMasterOfItsIds(): void
    {
        $authority = self::authority();
        $id = $authority->mint();
        $owners = $authority->owners($id);
        $self = $authority->nodeId();
        self::assertTrue($owners->isMinted());
        self::assertFalse($owners->isFailedOver());
        self::assertSame([$self, $self, $self, 0], [$owners->master, $owners->namedMaster, $owners->self, $owners->revision]);
        self::assertNull($owners->backup, 'a single node names no backup');
        self::assertTrue($authority->isClusterMinted($id));
    }

    public function testValidateIdAcceptsAMintedId(): void
    {
        $id = self::authority()->mint();
        self::assertTrue(self::handler()->validateId($id));
    }

    public function testValidateIdRefusesAStockRandomId(): void
    {
        $handler = self::handler();
        $authority = self::authority();
        // What PHP mints itself: sid_length 32, 4 or 5 bits per character; one starting with '1' too.
        foreach ([bin2hex(random_bytes(16)), '1' . substr(bin2hex(random_bytes(24)), 0, 40), 'abc'] as $id) {
            self::assertFalse($handler->validateId($id), $id);
            self::assertFalse($authority->owners($id)->isMinted(), $id);
            self::assertFalse($authority->isClusterMinted($id), $id);
        }
    }

    public function testValidateIdRefusesATamperedMintedId(): void
    {
        $handler = self::handler();
        $authority = self::authority();
        $id = $authority->mint();
        // The version, the master's length and bytes, the revision, the random part, the tag.
        foreach ([1, 2, 5, strlen($id) - 30, strlen($id) - 12, strlen($id) - 1] as $position) {
            $forged = self::tampered($id, $position);
            self::assertFalse($handler->validateId($forged), "flipped character $position");
            self::assertFalse($authority->isClusterMinted($forged), "flipped character $position");
        }
        self::assertFalse($handler->validateId($id . 'a'), 'one character more');
        self::assertFalse($handler->validateId(substr($id, 0, -1)), 'one character less');
        self::assertTrue($handler->validateId($id), 'the original still passes');
    }

    public function testValidateIdRefusesIdsOutsidePhpsAlphabetWithoutAskingTheDaemon(): void
    {
        $handler = self::handler(TestEnvironment::deadAddress());
        foreach (['', 'a b', "a\r\nflush_all", str_repeat('a', 257), 'ab.cd'] as $id) {
            self::assertFalse($handler->validateId($id), json_encode($id));
        }
    }

    /**
     * session_regenerate_id() and session_create_id() ask validateId whether a fresh id is taken
     * (true = collision, mint again). A just-minted id is answered "not taken" once, without a
     * round trip; after that it validates like any id.
     */
    public function testAFreshIdIsNotACollision(): void
    {
        $handler = self::handler();
        $id = $handler->create_sid();
        self::assertFalse($handler->validateId($id));
        self::assertTrue($handler->validateId($id));
    }

    public function testAnUnreachableDaemonFailsCreateSidWithTheAddress(): void
    {
        $dead = TestEnvironment::deadAddress();
        $handler = self::handler($dead);
        try {
            $handler->create_sid();
            self::fail('create_sid must not invent an id');
        } catch (\SessionCluster\Exception\SessionIdException $e) {
            self::assertStringContainsString("cannot create a session id (daemon tcp://$dead)", $e->getMessage());
        }
        // Neither "invalid" nor an exception (PHP would send the browser a new id either way, and
        // the user's next request would start a new session): the id passes, its read throws.
        $id = bin2hex(random_bytes(16));
        [$valid, $checkErrors] = self::collectErrors(static fn () => $handler->validateId($id));
        self::assertTrue($valid);
        self::assertSame([], $checkErrors, 'the failure is reported once, by the read');
        try {
            $handler->read($id);
            self::fail('the read of an id that could not be checked must throw');
        } catch (\SessionCluster\Exception\SessionIdException $e) {
            self::assertStringContainsString('cannot check session id ' . substr($id, 0, 6) . '...', $e->getMessage());
            self::assertStringContainsString("(daemon tcp://$dead)", $e->getMessage());
            self::assertStringNotContainsString($id, $e->getMessage(), 'never the whole id: it is a credential');
        }
    }

    public function testAnIdThatCouldNotBeCheckedIsNeverReadAsValidLater(): void
    {
        // A handler whose validateId could not ask reads nothing for that id, even once the
        // daemon answers again, and a later validateId decides afresh.
        $dead = TestEnvironment::deadAddress();
        $handler = self::handler($dead);
        $forged = bin2hex(random_bytes(16));
        self::assertTrue($handler->validateId($forged));
        try {
            $handler->read($forged);
            self::fail('the read of an id that could not be checked must throw');
        } catch (\SessionCluster\Exception\SessionIdException) {
            // expected
        }
        self::assertFalse(self::handler()->validateId($forged), 'a live daemon refuses the id it never minted');
    }
}
