<?php
// Readiness probe of the test web farm: which server and pool answered, the pool's session
// settings, and whether Debian's conf.d loaded the session extensions into php-fpm. Starts no
// session (in the client pool the prepended php-client has registered its handler: "user").
declare(strict_types=1);

header('Content-Type: application/json');
echo json_encode([
    'server' => getenv('FARM_SERVER'),
    'pool' => getenv('FARM_POOL'),
    'sapi' => PHP_SAPI,
    'handler' => ini_get('session.save_handler'),
    'save_path' => ini_get('session.save_path'),
    'memcached' => extension_loaded('memcached'),
    'memcache' => extension_loaded('memcache'),
]), "\n";
