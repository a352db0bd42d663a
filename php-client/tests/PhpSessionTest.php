<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\MovedMarker;

/**
 * Real session_start() in child PHP processes (fixtures/session-request.php), so PHP calls the
 * handler in its own order: strict mode, session_regenerate_id(), session_create_id(),
 * session_destroy(), lazy_write.
 */
final class PhpSessionTest extends DaemonTestCase
{
    private const SCRIPT = __DIR__ . '/fixtures/session-request.php';

    /**
     * One request through the handler registered with the transport under test.
     *
     * @param array<string, mixed> $job
     * @param array<string, mixed> $options
     * @return array<string, mixed>
     */
    private static function request(array $job, array $options = [], ?string $server = null): array
    {
        $job += ['register' => TestEnvironment::handlerOptions($server ?? TestEnvironment::singleNode(), $options), 'id' => null];
        return self::runRequest($job, []);
    }

    /**
     * @param array<string, mixed> $job
     * @param list<string> $ini
     * @return array<string, mixed>
     */
    private static function runRequest(array $job, array $ini): array
    {
        $run = self::finishPhp(self::startPhp(self::SCRIPT, $job, $ini));
        $details = sprintf("exit %d\nstdout: %s\nstderr: %s", $run['exitCode'], $run['stdout'], $run['stderr']);
        self::assertSame(0, $run['exitCode'], $details);
        $result = json_decode(trim($run['stdout']), true);
        self::assertIsArray($result, $details);
        $result['details'] = $details;
        return $result;
    }

    /** @param array<string, mixed> $result */
    private static function assertClean(array $result): void
    {
        self::assertArrayNotHasKey('exception', $result, $result['details']);
        self::assertSame([], $result['errors'], $result['details']);
        self::assertTrue($result['started'], $result['details']);
    }

    public function testTheOneLineInstallWithAutoPrependFile(): void
    {
        foreach ([TestEnvironment::singleNode(), TestEnvironment::singleNodeSocket()] as $savePath) {
            $ini = ['auto_prepend_file=' . dirname(__DIR__) . '/bootstrap.php', 'session.save_path=' . $savePath];
            $first = self::runRequest(['register' => null, 'id' => null, 'set' => ['visits' => 1]], $ini);
            self::assertClean($first);
            self::assertSame('1', $first['strictMode'], 'register() turned strict mode on');
            self::assertSame('user', $first['saveHandler']);
            self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $first['id']);

            $second = self::runRequest(['register' => null, 'id' => $first['id'], 'set' => ['visits' => 2]], $ini);
            self::assertClean($second);
            self::assertSame($first['id'], $second['id']);
            self::assertSame(['visits' => 1], $second['read']);
            self::assertSame('visits|i:2;', self::transport()->get(self::dataKey($first['id'])), $savePath);
        }
    }

    public function testALoginLifecycle(): void
    {
        $raw = self::transport();
        $visit = self::request(['set' => ['cart' => 'book']]);
        self::assertClean($visit);
        $id = $visit['id'];
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $id);
        self::assertSame('cart|s:4:"book";', $raw->get(self::dataKey($id)));

        // Login: a new id, the data kept, the old session gone.
        $login = self::request(['id' => $id, 'set' => ['user' => 'alice'], 'regenerate' => true]);
        self::assertClean($login);
        self::assertTrue($login['regenerated']);
        $loggedIn = $login['id'];
        self::assertNotSame($id, $loggedIn);
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $loggedIn);
        self::assertTrue(self::authority()->isClusterMinted($loggedIn));
        self::assertSame(['cart' => 'book'], $login['read']);
        self::assertNull($raw->get(self::dataKey($id)), 'session_regenerate_id(true) deleted the old session');
        self::assertSame('cart|s:4:"book";user|s:5:"alice";', $raw->get(self::dataKey($loggedIn)));
        self::assertNull($raw->get(self::lockKey($id)));
        self::assertNull($raw->get(self::lockKey($loggedIn)));

        $next = self::request(['id' => $loggedIn, 'createId' => true]);
        self::assertClean($next);
        self::assertSame($loggedIn, $next['id']);
        self::assertSame(['cart' => 'book', 'user' => 'alice'], $next['read']);
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $next['createdId'], 'session_create_id() mints too');

        $logout = self::request(['id' => $loggedIn, 'destroy' => true]);
        self::assertClean($logout);
        self::assertTrue($logout['destroyed']);
        self::assertNull($raw->get(self::dataKey($loggedIn)));
        self::assertNull($raw->get(self::lockKey($loggedIn)));
    }

    public function testStrictModeReplacesIdsTheClusterNeverMinted(): void
    {
        $raw = self::transport();
        $minted = self::authority()->mint();
        $unknownIds = [
            'stock PHP id' => bin2hex(random_bytes(16)),
            'tampered minted id' => self::tampered($minted, strlen($minted) - 5),
        ];
        foreach ($unknownIds as $name => $unknown) {
            $result = self::request(['id' => $unknown, 'set' => ['n' => 1]]);
            self::assertClean($result);
            self::assertNotSame($unknown, $result['id'], $name);
            self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $result['id'], $name);
            self::assertSame([], $result['read'], $name);
            self::assertNull($raw->get(self::dataKey($unknown)), "$name: nothing written under it");
            self::assertSame('n|i:1;', $raw->get(self::dataKey($result['id'])), $name);
        }
    }

    public function testSessionStartReHomesAFailedOverSession(): void
    {
        $raw = self::transport();
        $oldId = self::request(['set' => ['user' => 'alice']])['id'];

        $moved = self::request(['id' => $oldId, 'failedOver' => [$oldId], 'set' => ['step' => 2]]);
        self::assertClean($moved);
        $newId = $moved['id'];
        self::assertNotSame($oldId, $newId, 'PHP took the id create_sid gave (and would send it as the cookie)');
        self::assertSame(['user' => 'alice'], $moved['read']);
        self::assertSame('user|s:5:"alice";step|i:2;', $raw->get(self::dataKey($newId)));
        self::assertSame(MovedMarker::pointingTo($newId), $raw->get(self::dataKey($oldId)));

        $late = self::request(['id' => $oldId, 'failedOver' => [$oldId]]);
        self::assertClean($late);
        self::assertSame($newId, $late['id'], 'a request still carrying the old cookie lands on the new id');
        self::assertSame(['user' => 'alice', 'step' => 2], $late['read']);
    }

    /**
     * A first visit: create_sid throws (there is no session to lose). PHP's user-handler glue adds
     * its own Error ("Session id must be a string") on top, with ours as the previous exception.
     */
    public function testAnUnreachableDaemonFailsTheFirstVisitWithTheAddress(): void
    {
        $dead = TestEnvironment::deadAddress();
        $result = self::request(['id' => null, 'set' => ['n' => 1]], [], $dead);
        self::assertSame('Error', $result['exception'] ?? null, $result['details']);
        self::assertStringContainsString('<- SessionCluster\\Exception\\SessionIdException: session-cluster: cannot create a session id', $result['message']);
        self::assertStringContainsString("(daemon tcp://$dead)", $result['message']);
        self::assertNull($result['written']);
    }

    /**
     * A returning visitor whose id cannot be checked: session_start() throws the reason (the
     * request ends in an error, 500: a balancer can retry it on another PHP server), and PHP
     * never gave up the id the browser sent, so it sends no new cookie. Had validateId thrown or
     * answered false, PHP would have gone on with a random id of its own and sent it as the
     * cookie: the user's next request would have started a new session.
     */
    public function testAnUnreachableDaemonFailsSessionStartAndKeepsTheBrowsersId(): void
    {
        $dead = TestEnvironment::deadAddress();
        $id = self::authority()->mint();
        $result = self::request(['id' => $id, 'set' => ['n' => 1], 'trace' => true], [], $dead);
        self::assertSame('SessionCluster\\Exception\\SessionIdException', $result['exception'] ?? null, $result['details']);
        self::assertStringContainsString('cannot check session id ' . substr($id, 0, 6) . '...', $result['message']);
        self::assertStringContainsString("(daemon tcp://$dead)", $result['message']);
        self::assertSame(["open() = true", "validateId($id) = true", "read($id) threw SessionCluster\\Exception\\SessionIdException"], $result['calls'], 'PHP went on with the id the browser sent (and, the exception pending, called nothing more: no lock was taken)');
        self::assertNull($result['written']);
    }

    /**
     * Re-homing a failed-over session fails (here: its lock is held past lock_wait_timeout_ms).
     * The session keeps its old id, served by the node that took it over, and is re-homed by a
     * later request; PHP never goes on with an id of its own.
     */
    public function testAReHomingThatFailsKeepsTheOldIdUntilALaterRequest(): void
    {
        $raw = self::transport();
        $oldId = self::request(['set' => ['user' => 'alice']])['id'];
        self::assertTrue($raw->add(self::lockKey($oldId), '1', 0), 'another request holds the lock');

        $blocked = self::request(['id' => $oldId, 'failedOver' => [$oldId], 'set' => ['step' => 2], 'trace' => true], ['lock_wait_timeout_ms' => 200]);
        self::assertArrayNotHasKey('exception', $blocked, $blocked['details']);
        self::assertSame(
            ["open() = true", "validateId($oldId) = false", 'create_sid() = ' . json_encode($oldId), "read($oldId) = false", 'close() = true'],
            $blocked['calls'],
            'PHP went on with the old id, which it sends back as the same cookie',
        );
        self::assertStringContainsString('cannot re-home session ' . substr($oldId, 0, 6) . '...', implode("\n", $blocked['errors']));
        self::assertFalse($blocked['started'], 'the read waits for the same lock, and gives up');
        self::assertSame('user|s:5:"alice";', $raw->get(self::dataKey($oldId)), 'the session is untouched');

        self::assertTrue($raw->delete(self::lockKey($oldId)));
        $moved = self::request(['id' => $oldId, 'failedOver' => [$oldId], 'set' => ['step' => 2]]);
        self::assertClean($moved);
        self::assertNotSame($oldId, $moved['id']);
        self::assertSame(['user' => 'alice'], $moved['read']);
        self::assertSame(MovedMarker::pointingTo($moved['id']), $raw->get(self::dataKey($oldId)));
    }
}
