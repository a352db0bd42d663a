<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\Exception\ConfigurationException;
use SessionCluster\Options;
use SessionCluster\Transport\TransportFactory;

/**
 * The handler against a daemon with --auth-file: the memcached transport authenticates with SASL
 * (binary protocol), the socket transport with the ascii credentials; pecl memcache cannot, and
 * SASL over ascii does not exist: both are refused when the handler is configured.
 */
final class AuthTest extends DaemonTestCase
{
    private static function authenticates(): bool
    {
        $options = TestEnvironment::transportOptions();
        $transport = TransportFactory::resolveName($options['transport']);
        return $transport === TransportFactory::SOCKET || ($transport === TransportFactory::MEMCACHED && $options['binary']);
    }

    public function testWithItsCredentialsTheHandlerReadsAndWritesSessions(): void
    {
        if (!self::authenticates()) {
            $this->expectException(ConfigurationException::class);
        }
        $handler = self::handler(TestEnvironment::authNode(), TestEnvironment::authUser());
        $id = self::createSession($handler, 'user|s:5:"alice";');
        $again = self::handler(TestEnvironment::authNode(), TestEnvironment::authUser());
        self::assertTrue($again->open('', 'PHPSESSID'));
        self::assertSame('user|s:5:"alice";', $again->read($id));
        self::assertTrue($again->close());
    }

    public function testWithAWrongPasswordOrNoneNothingIsReadOrWritten(): void
    {
        if (!self::authenticates()) {
            self::assertTrue(true, 'this transport is refused credentials: see the test above');
            return;
        }
        $user = TestEnvironment::authUser();
        foreach ([['username' => $user['username'], 'password' => 'not-' . $user['password']], []] as $credentials) {
            $handler = self::handler(TestEnvironment::authNode(), $credentials);
            [$started] = self::collectErrors(static function () use ($handler): bool {
                try {
                    return $handler->open('', 'PHPSESSID') && $handler->write($handler->create_sid(), 'x|i:1;');
                } catch (\Throwable) {
                    return false;
                }
            });
            self::assertFalse($started, json_encode(array_keys($credentials)) ?: '');
        }
    }

    public function testCredentialsComeInPairsAndStayOutOfMessages(): void
    {
        try {
            Options::fromArray(['server' => '127.0.0.1:11211', 'username' => 'php']);
            self::fail('a username without a password was accepted');
        } catch (ConfigurationException $e) {
            self::assertStringContainsString('give both', $e->getMessage());
        }
        $options = Options::fromArray(['server' => '127.0.0.1:11211', 'username' => 'php', 'password' => 'secret-word']);
        self::assertStringNotContainsString('secret-word', print_r($options->credentials, true));
    }
}
