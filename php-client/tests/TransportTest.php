<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\Exception\TransportException;
use SessionCluster\ServerAddress;
use SessionCluster\Transport\SocketTransport;
use SessionCluster\Transport\Transport;

/** The transport under test against the single-node daemon, over TCP and the unix socket. */
final class TransportTest extends DaemonTestCase
{
    /** @return iterable<string, array{callable(): string}> */
    public static function servers(): iterable
    {
        yield 'tcp' => [static fn (): string => TestEnvironment::singleNode()];
        yield 'unix socket' => [static fn (): string => TestEnvironment::singleNodeSocket()];
    }

    /**
     * @dataProvider servers
     * @param callable(): string $server
     */
    public function testCommands(callable $server): void
    {
        $transport = self::transport($server());
        $key = 'transport-test.' . bin2hex(random_bytes(8));

        self::assertNull($transport->get($key));
        self::assertTrue($transport->add($key, 'first', 60));
        self::assertFalse($transport->add($key, 'second', 60), 'add of an existing key');
        self::assertSame('first', $transport->get($key));
        $transport->set($key, 'third', 60);
        self::assertSame('third', $transport->get($key));
        self::assertSame([$key => 'third'], $transport->getMany([$key, $key . '.missing']));
        self::assertSame([], $transport->getMany([$key . '.missing']));
        if ($transport->supportsTouch()) {
            self::assertTrue($transport->touch($key, 60));
            self::assertFalse($transport->touch($key . '.missing', 60));
        }
        self::assertTrue($transport->delete($key));
        self::assertFalse($transport->delete($key), 'delete of a missing key');
        self::assertNull($transport->get($key));
        $transport->close();
        self::assertNull($transport->get($key), 'reconnects after close()');
    }

    /**
     * Nothing for an application's error handler to see, not even errors silenced with @ (a
     * handler that ignores error_reporting() sees those): pecl memcache 4.0 on PHP 8.2 would
     * report its undeclared properties as deprecated on every request.
     */
    public function testSuccessfulCommandsRaiseNoPhpErrorAtAll(): void
    {
        $seen = [];
        set_error_handler(static function (int $level, string $message) use (&$seen): bool {
            $seen[] = $message;
            return true;
        });
        try {
            $transport = self::transport();
            $key = 'transport-test.' . bin2hex(random_bytes(8));
            $transport->get($key);
            $transport->add($key, 'v', 60);
            $transport->set($key, 'w', 60);
            $transport->getMany([$key, $key . '.missing']);
            $transport->delete($key);
            $transport->close();
            $transport->get($key);
        } finally {
            restore_error_handler();
        }
        self::assertSame([], $seen);
    }

    /** Any bytes, stored raw: what one transport writes, every other reads (here: plain ascii). */
    public function testValuesAreStoredByteForByte(): void
    {
        $transport = self::transport();
        $raw = new SocketTransport(ServerAddress::parse(TestEnvironment::singleNode()));
        $values = [
            'empty' => '',
            'all bytes' => implode('', array_map('chr', range(0, 255))),
            'protocol lookalike' => "x\r\nEND\r\nVALUE k 0 1\r\n",
            // Above both extensions' compression thresholds (2000 and 20000 bytes).
            'large, compressible' => str_repeat('user|s:5:"alice";', 6000),
            'large, random' => random_bytes(300_000),
        ];
        foreach ($values as $name => $value) {
            $key = 'transport-test.' . bin2hex(random_bytes(8));
            $transport->set($key, $value, 60);
            self::assertSame($value, $transport->get($key), $name);
            self::assertSame($value, $raw->get($key), "$name, read back by the ascii socket transport");
            $rawKey = $key . '.raw';
            $raw->set($rawKey, $value, 60);
            self::assertSame($value, $transport->get($rawKey), "$name, written by the ascii socket transport");
        }
    }

    public function testReservedKeysAnswerReadsAndRefuseWrites(): void
    {
        $transport = self::transport();
        $self = $transport->get('__session_cluster__.self');
        self::assertIsString($self);
        self::assertNotSame('', $self);
        self::assertNull($transport->get('__session_cluster__.no-such-name'));

        self::assertFalse($transport->add('__session_cluster__.self', 'x', 0));
        self::assertFalse($transport->delete('__session_cluster__.self'));
        try {
            $transport->set('__session_cluster__.self', 'forged', 0);
            self::fail('set of a reserved key must be refused');
        } catch (TransportException $e) {
            self::assertStringContainsString('__session_cluster__.self', $e->getMessage());
        }
        self::assertSame($self, $transport->get('__session_cluster__.self'));

        // One round trip for reserved and ordinary keys together.
        $key = 'transport-test.' . bin2hex(random_bytes(8));
        $transport->set($key, 'v', 60);
        $many = $transport->getMany(['__session_cluster__.self', $key, $key . '.missing', '__session_cluster__.mint']);
        self::assertSame(['__session_cluster__.self', $key, '__session_cluster__.mint'], array_keys($many));
        self::assertSame([$self, 'v'], [$many['__session_cluster__.self'], $many[$key]]);
        self::assertMatchesRegularExpression(self::MINTED_ID_PATTERN, $many['__session_cluster__.mint']);
    }

    public function testAnUnreachableDaemonIsAnErrorNotAMiss(): void
    {
        $dead = TestEnvironment::deadAddress();
        $transport = self::transport($dead);
        $attempts = [
            'get' => static fn (Transport $t) => $t->get('k'),
            'getMany' => static fn (Transport $t) => $t->getMany(['k', 'l']),
            'add' => static fn (Transport $t) => $t->add('k', 'v', 0),
            'set' => static fn (Transport $t) => $t->set('k', 'v', 0),
            'delete' => static fn (Transport $t) => $t->delete('k'),
        ];
        foreach ($attempts as $name => $attempt) {
            try {
                $attempt($transport);
                self::fail("$name on a dead address must throw");
            } catch (TransportException $e) {
                self::assertStringContainsString("tcp://$dead", $e->getMessage(), $name);
            }
        }
    }

    public function testTheSocketTransportRefusesKeysThatWouldBreakTheProtocol(): void
    {
        $raw = new SocketTransport(ServerAddress::parse(TestEnvironment::singleNode()));
        foreach (["a b", "a\r\nflush_all", '', str_repeat('k', 251)] as $key) {
            try {
                $raw->get($key);
                self::fail('key ' . json_encode($key) . ' must be refused');
            } catch (TransportException $e) {
                self::assertStringContainsString('is not a memcached key', $e->getMessage());
            }
        }
        self::assertNull($raw->get(str_repeat('k', 250)));
    }

    public function testTheSocketTransportTimesOutOnASilentServer(): void
    {
        // Accepts the connection (the kernel does, from the backlog) but never answers.
        $silent = stream_socket_server('tcp://127.0.0.1:0');
        self::assertNotFalse($silent);
        try {
            $address = (string) stream_socket_get_name($silent, false);
            $raw = new SocketTransport(ServerAddress::parse($address), 0.2);
            $started = hrtime(true);
            try {
                $raw->get('k');
                self::fail('a silent server must time out');
            } catch (TransportException $e) {
                self::assertStringContainsString('timed out waiting for a reply', $e->getMessage());
            }
            self::assertLessThan(2_000, (hrtime(true) - $started) / 1e6);
        } finally {
            fclose($silent);
        }
    }
}
