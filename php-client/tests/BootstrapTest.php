<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use PHPUnit\Framework\TestCase;

/**
 * bootstrap.php as this suite loads it, with SESSION_CLUSTER_NO_AUTOREGISTER set (its registering
 * side runs in PhpSessionTest, through auto_prepend_file).
 */
final class BootstrapTest extends TestCase
{
    public function testLoadsTheClassesWithoutRegisteringAHandler(): void
    {
        self::assertTrue(class_exists(\SessionCluster\SessionHandler::class));
        self::assertTrue(interface_exists(\SessionCluster\Transport\Transport::class));
        self::assertTrue(class_exists(\SessionCluster\Exception\TransportException::class));
        self::assertNotSame('user', ini_get('session.save_handler'), 'no handler was installed');
        self::assertFalse(class_exists('SessionCluster\NoSuchClass'), 'a missing class is not an error');
    }
}
