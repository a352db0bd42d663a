<?php

/**
 * One-line install of the session-cluster handler, without composer:
 *
 *     auto_prepend_file = /path/to/php-client/bootstrap.php      ; php.ini
 *
 * or `require '/path/to/php-client/bootstrap.php';` at the top of the application. It makes the
 * SessionCluster\ classes loadable (unless composer's autoloader already does) and registers the
 * handler with default options: the daemon named by session.save_path when it holds an address,
 * else 127.0.0.1:11211. Set the environment variable SESSION_CLUSTER_NO_AUTOREGISTER to load the
 * classes without registering (tests, or an application that calls register() with options).
 */

declare(strict_types=1);

if (!class_exists(\SessionCluster\SessionHandler::class)) {
    spl_autoload_register(static function (string $class): void {
        $namespace = 'SessionCluster\\';
        if (strncmp($class, $namespace, strlen($namespace)) !== 0) {
            return;
        }
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($namespace))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    });
}

if (getenv('SESSION_CLUSTER_NO_AUTOREGISTER') === false) {
    \SessionCluster\SessionHandler::register();
}
