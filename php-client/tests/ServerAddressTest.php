<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use PHPUnit\Framework\TestCase;
use SessionCluster\Exception\ConfigurationException;
use SessionCluster\ServerAddress;

final class ServerAddressTest extends TestCase
{
    /** @return iterable<string, array{string, string}> */
    public static function spellings(): iterable
    {
        yield 'host:port' => ['127.0.0.1:11211', 'tcp://127.0.0.1:11211'];
        yield 'host name' => ['sessions.local:2000', 'tcp://sessions.local:2000'];
        yield 'tcp://' => ['tcp://10.0.0.5:11311', 'tcp://10.0.0.5:11311'];
        yield 'pecl memcache query ignored' => ['tcp://127.0.0.1:11211?persistent=1&weight=2', 'tcp://127.0.0.1:11211'];
        yield 'IPv6' => ['[::1]:11211', 'tcp://[::1]:11211'];
        yield 'tcp:// IPv6' => ['tcp://[::1]:11211', 'tcp://[::1]:11211'];
        yield 'unix://' => ['unix:///run/session-cluster.sock', 'unix:///run/session-cluster.sock'];
        yield 'bare .sock path' => ['/run/session-cluster/daemon.sock', 'unix:///run/session-cluster/daemon.sock'];
        yield 'spaces around' => ['  127.0.0.1:11211 ', 'tcp://127.0.0.1:11211'];
    }

    /** @dataProvider spellings */
    public function testParsesEverySpellingTheDocsName(string $spelling, string $uri): void
    {
        self::assertSame($uri, ServerAddress::parse($spelling)->uri());
        self::assertSame($uri, ServerAddress::fromSavePath($spelling)->uri());
    }

    /** @return iterable<string, array{string}> */
    public static function notAddresses(): iterable
    {
        yield 'empty' => [''];
        yield 'Debian session directory' => ['/var/lib/php/sessions'];
        yield 'files handler depth;mode;dir' => ['2;0600;/var/lib/php/sessions'];
        yield 'server list' => ['127.0.0.1:11211,127.0.0.1:11212'];
        yield 'php-memcached PERSISTENT=' => ['PERSISTENT=pool 127.0.0.1:11211'];
        yield 'no port' => ['127.0.0.1'];
        yield 'port 0' => ['127.0.0.1:0'];
        yield 'port too large' => ['127.0.0.1:65536'];
        yield 'relative unix path' => ['unix://run/x.sock'];
        yield 'udp' => ['udp://127.0.0.1:11211'];
    }

    /** @dataProvider notAddresses */
    public function testSavePathsThatAreNoAddressFallBackToTheDefault(string $savePath): void
    {
        self::assertSame('tcp://127.0.0.1:11211', ServerAddress::fromSavePath($savePath)->uri());
    }

    /** @dataProvider notAddresses */
    public function testAnExplicitServerThatIsNoAddressIsRefused(string $address): void
    {
        $this->expectException(ConfigurationException::class);
        $this->expectExceptionMessage('is not an address');
        ServerAddress::parse($address);
    }

    public function testABarePathCountsWhenItIsASocketFile(): void
    {
        $path = sys_get_temp_dir() . '/session-cluster-test-' . getmypid() . '-' . bin2hex(random_bytes(4));
        $server = stream_socket_server('unix://' . $path);
        self::assertNotFalse($server);
        try {
            self::assertSame('unix://' . $path, ServerAddress::fromSavePath($path)->uri());
        } finally {
            fclose($server);
            @unlink($path);
        }
    }

    public function testHostPortAndSocketAccessors(): void
    {
        $tcp = ServerAddress::parse('127.0.0.1:2211');
        self::assertFalse($tcp->isUnixSocket());
        self::assertSame(['127.0.0.1', 2211], [$tcp->host, $tcp->port]);
        $unix = ServerAddress::parse('unix:///tmp/d.sock');
        self::assertTrue($unix->isUnixSocket());
        self::assertSame('/tmp/d.sock', $unix->socketPath);
    }
}
