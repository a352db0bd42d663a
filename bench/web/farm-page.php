<?php
// The page of the PHP farm bench (bench/farm.sh): what a logged-in page does with its session.
// It starts the session (taking its lock, with the pool's handler), fills a new one with about
// 2 KB (a user profile, a cart, flash messages), counts the visit, writes the session back, and
// says so. A first request (no cookie) also gets the `route` cookie naming the PHP server that
// served it, which nginx's sticky routing follows (the open-source way: a map on a cookie).
// A failed session_start() or write answers 500, which wrk counts as an error.
require __DIR__ . '/start-session.php';
$errors = [];
bench_start_session(500, $errors);
if (!isset($_SESSION['profile'])) {
    $_SESSION['profile'] = ['name' => 'user ' . substr(session_id(), 0, 8), 'bio' => str_repeat('lorem ipsum ', 120)];
    $_SESSION['cart'] = array_fill(0, 20, ['sku' => 'SKU-0000', 'qty' => 1, 'price' => 9.99]);
    $_SESSION['visits'] = 0;
}
$_SESSION['visits']++;
$visits = $_SESSION['visits'];
if (!session_write_close() || $errors !== []) {
    http_response_code(500);
    echo 'session write failed: ', implode('; ', $errors), "\n";
    exit;
}
$server = getenv('FARM_SERVER') ?: '';
if (($_COOKIE['route'] ?? '') !== $server) {
    setcookie('route', $server, 0, '/');
}
echo 'ok ', $visits, "\n";
