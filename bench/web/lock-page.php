<?php
// The page of the session lock bench (bench/locks.sh): one request of a page or its ajax calls.
// It holds its session for HOLD_MS (php-fpm's environment), as a page that reads and writes its
// session while it works does, then writes the session back, which releases the lock.
// A session_start() that fails (the lock could not be had) answers 503, which the driver counts.
require __DIR__ . '/start-session.php';
$errors = [];
bench_start_session(503, $errors);
usleep((int) (getenv('HOLD_MS') ?: 20) * 1000);
$_SESSION['hits'] = ($_SESSION['hits'] ?? 0) + 1;
session_write_close();
echo 'ok ', $_SESSION['hits'], "\n";
