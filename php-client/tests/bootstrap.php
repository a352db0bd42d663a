<?php

declare(strict_types=1);

// The library through its own one-line install, without registering a handler: each test builds
// the handlers it needs.
putenv('SESSION_CLUSTER_NO_AUTOREGISTER=1');
require dirname(__DIR__) . '/bootstrap.php';

spl_autoload_register(static function (string $class): void {
    $namespace = 'SessionCluster\\Tests\\';
    if (strncmp($class, $namespace, strlen($namespace)) === 0) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($namespace))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
