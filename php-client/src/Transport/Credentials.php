<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

/**
 * A user and password of the daemon's --auth-file: sent with SASL PLAIN by the memcached transport
 * (binary protocol), and as the ascii credentials (a first `set` of "user password", as memcached
 * -Y takes them) by the socket transport. Never logged or put in an exception message.
 */
final class Credentials
{
    public function __construct(
        public readonly string $username,
        #[\SensitiveParameter] public readonly string $password,
    ) {
    }

    public function __debugInfo(): array
    {
        return ['username' => $this->username, 'password' => '(hidden)'];
    }
}
