<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use PHPUnit\Framework\TestCase;
use SessionCluster\Exception\ConfigurationException;
use SessionCluster\Exception\SessionIdException;
use SessionCluster\Exptime;
use SessionCluster\MovedMarker;
use SessionCluster\Options;
use SessionCluster\Owners;

/** The pieces that need no daemon: options, exptimes, the owners answer, moved-markers. */
final class OptionsTest extends TestCase
{
    public function testDefaults(): void
    {
        $savePath = ini_get('session.save_path');
        $maxExecutionTime = ini_get('max_execution_time');
        $lifetime = ini_get('session.gc_maxlifetime');
        try {
            ini_set('session.save_path', '/var/lib/php/sessions');
            ini_set('max_execution_time', '0');
            ini_set('session.gc_maxlifetime', '1440');
            $options = Options::fromArray([]);
            self::assertSame('tcp://127.0.0.1:11211', $options->server->uri());
            self::assertSame('auto', $options->transport);
            self::assertTrue($options->binary);
            self::assertSame('memc.sess.key.', $options->prefix);
            self::assertSame(30, $options->lockExpire);
            self::assertSame(10_000, $options->lockWaitTimeoutMs);
            self::assertSame(300, $options->movedMarkerTtl);
            self::assertNull($options->ttl);
            self::assertSame(1440, $options->sessionTtl());
            // The lifetime is read when a session is written, so an ini_set() before session_start() counts.
            ini_set('session.gc_maxlifetime', '600');
            self::assertSame(600, $options->sessionTtl());

            ini_set('max_execution_time', '45');
            ini_set('session.save_path', 'tcp://127.0.0.1:2000');
            $options = Options::fromArray([]);
            self::assertSame(45, $options->lockExpire);
            self::assertSame('tcp://127.0.0.1:2000', $options->server->uri());
        } finally {
            ini_set('session.save_path', (string) $savePath);
            ini_set('max_execution_time', (string) $maxExecutionTime);
            ini_set('session.gc_maxlifetime', (string) $lifetime);
        }
    }

    public function testExplicitOptions(): void
    {
        $options = Options::fromArray([
            'server' => 'unix:///run/sc.sock', 'transport' => 'socket', 'binary' => false, 'timeout_ms' => 250,
            'prefix' => 'app.', 'lock_expire' => '12', 'lock_wait_timeout_ms' => 0, 'ttl' => 99, 'moved_marker_ttl' => 60,
        ]);
        self::assertSame('unix:///run/sc.sock', $options->server->uri());
        self::assertSame(['socket', false, 250, 'app.', 12, 0, 99, 60], [
            $options->transport, $options->binary, $options->timeoutMs, $options->prefix, $options->lockExpire,
            $options->lockWaitTimeoutMs, $options->sessionTtl(), $options->movedMarkerTtl,
        ]);
    }

    /** @return iterable<string, array{array<string, mixed>, string}> */
    public static function badOptions(): iterable
    {
        yield 'typo' => [['lock_expires' => 5], 'unknown option(s): lock_expires'];
        yield 'transport' => [['transport' => 'redis'], 'transport: "redis" is not one of auto, memcached, memcache, socket'];
        yield 'server' => [['server' => 'localhost'], 'server: "localhost" is not an address'];
        yield 'negative ttl' => [['ttl' => -1], 'ttl: expected an integer >= 0'];
        yield 'zero lock_expire' => [['lock_expire' => 0], 'lock_expire: expected an integer >= 1'];
        yield 'binary as string' => [['binary' => 'yes'], 'binary: expected true or false'];
        yield 'prefix with a space' => [['prefix' => 'my app.'], 'prefix: must not contain spaces'];
    }

    /**
     * @dataProvider badOptions
     * @param array<string, mixed> $options
     */
    public function testRefusesBadOptionsByName(array $options, string $message): void
    {
        $this->expectException(ConfigurationException::class);
        $this->expectExceptionMessage($message);
        Options::fromArray($options);
    }

    public function testExptimeBeyond30DaysBecomesAnAbsoluteTime(): void
    {
        self::assertSame(0, Exptime::fromLifetime(0));
        self::assertSame(1440, Exptime::fromLifetime(1440));
        self::assertSame(2_592_000, Exptime::fromLifetime(2_592_000));
        self::assertSame(1_700_000_000 + 2_592_001, Exptime::fromLifetime(2_592_001, 1_700_000_000));
    }

    public function testOwnersOfAMintedId(): void
    {
        $owners = Owners::fromQueryString('id_kind=minted&master=node2&backup=node3&self=node3&named_master=node1&named_backup=node2&revision=4');
        self::assertTrue($owners->isMinted());
        self::assertTrue($owners->isFailedOver());
        self::assertSame(['node2', 'node3', 'node3', 'node1', 'node2', 4], [
            $owners->master, $owners->backup, $owners->self, $owners->namedMaster, $owners->namedBackup, $owners->revision,
        ]);
        $home = Owners::fromQueryString('id_kind=minted&master=node.1&backup=&self=node.1&named_master=node.1&named_backup=&revision=0');
        self::assertFalse($home->isFailedOver());
        self::assertNull($home->backup);
        self::assertNull($home->namedBackup);
        self::assertSame('node.1', $home->master);
    }

    public function testOwnersOfAHashedId(): void
    {
        $owners = Owners::fromQueryString('id_kind=hashed&master=b&backup=a&self=a');
        self::assertFalse($owners->isMinted());
        self::assertFalse($owners->isFailedOver());
        self::assertNull($owners->namedMaster);
        self::assertNull($owners->revision);
    }

    public function testOwnersWhileTheNodeKnowsNoLiveMemberYet(): void
    {
        $owners = Owners::fromQueryString('id_kind=minted&master=&backup=&self=b&named_master=a&named_backup=&revision=0');
        self::assertNull($owners->master);
        self::assertFalse($owners->isFailedOver(), 'unknown is not failed over: nothing moves');
    }

    /** @return iterable<string, array{string}> */
    public static function badOwnersAnswers(): iterable
    {
        yield 'empty' => [''];
        yield 'unknown kind' => ['id_kind=other&master=a&backup=&self=a'];
        yield 'no self' => ['id_kind=hashed&master=a&backup='];
        yield 'minted without named_master' => ['id_kind=minted&master=a&backup=&self=a&revision=1'];
        yield 'revision not a number' => ['id_kind=minted&master=a&backup=&self=a&named_master=a&named_backup=&revision=x'];
        yield 'array value' => ['id_kind=hashed&master[]=a&backup=&self=a'];
    }

    /** @dataProvider badOwnersAnswers */
    public function testRefusesOwnersAnswersOfAnotherShape(string $answer): void
    {
        $this->expectException(SessionIdException::class);
        Owners::fromQueryString($answer);
    }

    public function testMovedMarker(): void
    {
        $marker = MovedMarker::pointingTo('1abcdef');
        self::assertSame("\0session-cluster:moved:1abcdef", $marker);
        self::assertTrue(MovedMarker::isMarker($marker));
        self::assertSame('1abcdef', MovedMarker::target($marker));
        self::assertNull(MovedMarker::target('user|s:5:"alice";'));
        self::assertNull(MovedMarker::target(MovedMarker::PREFIX . 'not an id'));
        self::assertFalse(MovedMarker::isMarker(''));
    }
}
