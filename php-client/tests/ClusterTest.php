<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

/** Against the 3-node cluster: each handler talks to one node only, as PHP on a web server does. */
final class ClusterTest extends DaemonTestCase
{
    /** @return list<string> */
    private static function nodes(): array
    {
        return TestEnvironment::clusterNodes();
    }

    /** @return list<string> each node's id, in the order of nodes() */
    private static function nodeIds(): array
    {
        return array_map(static fn (string $node) => self::authority($node)->nodeId(), self::nodes());
    }

    public function testAnIdMintedOnNode1NamesNode1AsMasterEverywhere(): void
    {
        [$node1] = self::nodes();
        $nodeIds = self::nodeIds();
        self::assertCount(3, array_unique($nodeIds));
        $id = self::handler($node1)->create_sid();

        foreach (self::nodes() as $i => $node) {
            $owners = self::authority($node)->owners($id);
            self::assertTrue($owners->isMinted(), "asked node " . ($i + 1));
            self::assertFalse($owners->isFailedOver());
            self::assertSame($nodeIds[0], $owners->master, 'the minting node is master');
            self::assertSame($nodeIds[0], $owners->namedMaster);
            self::assertSame($nodeIds[$i], $owners->self);
            self::assertContains($owners->backup, [$nodeIds[1], $nodeIds[2]], 'a backup on another node');
            self::assertSame($owners->backup, $owners->namedBackup);
            self::assertTrue(self::handler($node)->validateId($id), "valid on node " . ($i + 1));
        }
    }

    public function testEachNodeMintsIdsItIsMasterOf(): void
    {
        foreach (self::nodes() as $i => $node) {
            $authority = self::authority($node);
            $owners = $authority->owners($authority->mint());
            self::assertSame($authority->nodeId(), $owners->master, "node " . ($i + 1));
            self::assertSame($authority->nodeId(), $owners->namedMaster);
        }
    }

    public function testASessionWrittenOnNode1ReadsTheSameOnNodes2And3(): void
    {
        [$node1, $node2, $node3] = self::nodes();
        $id = self::createSession(self::handler($node1), 'user|s:5:"alice";');

        foreach ([$node2, $node3] as $node) {
            $handler = self::handler($node);
            self::assertTrue($handler->validateId($id));
            self::assertSame('user|s:5:"alice";', $handler->read($id), $node);
            self::assertTrue($handler->close());
        }

        $third = self::handler($node3);
        self::assertSame('user|s:5:"alice";', $third->read($id));
        self::assertTrue($third->write($id, 'user|s:5:"alice";from|i:3;'));
        self::assertTrue($third->close());
        foreach (self::nodes() as $node) {
            self::assertSame('user|s:5:"alice";from|i:3;', self::transport($node)->get(self::dataKey($id)), $node);
        }
    }

    public function testTheLockHoldsAcrossNodes(): void
    {
        [$node1, , $node3] = self::nodes();
        $holder = self::handler($node1);
        $id = self::createSession($holder, 'a|i:1;');
        self::assertSame('a|i:1;', $holder->read($id));

        $waiter = self::handler($node3, ['lock_wait_timeout_ms' => 200]);
        [$data, $errors] = self::collectErrors(static fn () => $waiter->read($id));
        self::assertFalse($data, 'node 3 sees the lock taken through node 1');
        self::assertStringContainsString('the session lock is still held', $errors[0][1] ?? '');

        self::assertTrue($holder->close());
        self::assertSame('a|i:1;', $waiter->read($id));
        self::assertTrue($waiter->close());
    }

    public function testSessionStartThroughAnotherNodeKeepsTheId(): void
    {
        [$node1, $node2] = self::nodes();
        $id = self::createSession(self::handler($node1), 'n|i:1;');
        $job = ['register' => TestEnvironment::handlerOptions($node2), 'id' => $id, 'set' => ['n' => 2]];
        $run = self::finishPhp(self::startPhp(__DIR__ . '/fixtures/session-request.php', $job));
        $result = json_decode(trim($run['stdout']), true);
        self::assertIsArray($result, $run['stdout'] . $run['stderr']);
        self::assertSame([], $result['errors'], $run['stdout']);
        self::assertSame($id, $result['id'], 'strict mode on node 2 accepts an id node 1 minted');
        self::assertSame(['n' => 1], $result['read']);
        self::assertSame('n|i:2;', self::transport($node1)->get(self::dataKey($id)));
    }
}
