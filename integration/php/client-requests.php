<?php
/**
 * PHP requests through the php-client (php-client/bootstrap.php, auto-prepended by the test), one
 * after another in one process, as a browser would send them: each stdin line is the session
 * cookie of one request ("-" for none). Each request starts the session, adds 1 to $_SESSION['n']
 * and ends it, and prints:
 *
 *     OK <cookie sent> <cookie after the request> <n>
 *     FAIL <cookie sent> <reason>
 *
 * A request is OK only if session_start() and session_write_close() returned true and PHP
 * warned nothing (PHP 8.2 only warns when a handler fails to write).
 */
declare(strict_types=1);

// With SESSION_CLUSTER_TRANSPORT the test picks a transport: bootstrap.php was told not to
// register (SESSION_CLUSTER_NO_AUTOREGISTER), so register here; the daemon is session.save_path.
// Without it, bootstrap.php registered with its defaults (the one-line php.ini install).
$transport = getenv('SESSION_CLUSTER_TRANSPORT');
if ($transport !== false && $transport !== '') {
    \SessionCluster\SessionHandler::register(['transport' => $transport]);
}

$warnings = [];
set_error_handler(static function (int $level, string $message) use (&$warnings): bool {
    // What error_reporting() hides (an @-silenced call) is not a warning the request saw.
    if ((error_reporting() & $level) !== 0) {
        $warnings[] = $message;
    }
    return true;
});

while (($line = fgets(STDIN)) !== false) {
    $cookie = trim($line);
    if ($cookie === '') {
        continue;
    }
    $warnings = [];
    try {
        if ($cookie !== '-') {
            session_id($cookie);
        }
        $started = session_start();
        if (!$started || session_status() !== PHP_SESSION_ACTIVE) {
            echo 'FAIL ', $cookie, ' session_start failed: ', implode(' | ', $warnings), "\n";
            continue;
        }
        $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
        $n = $_SESSION['n'];
        $after = session_id();
        $closed = session_write_close();
        if (!$closed || $warnings !== []) {
            echo 'FAIL ', $cookie, ' ', $closed ? '' : 'session_write_close failed: ', implode(' | ', $warnings), "\n";
            continue;
        }
        echo 'OK ', $cookie, ' ', $after, ' ', $n, "\n";
    } catch (\Throwable $e) {
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_abort();
        }
        echo 'FAIL ', $cookie, ' ', get_class($e), ': ', str_replace("\n", ' ', $e->getMessage()), "\n";
    }
    // session_id() keeps the last id; the next request names its own cookie.
    session_id('');
}
echo "DONE\n";
