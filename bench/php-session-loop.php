<?php
// One PHP worker of bench/php-request-cost.mjs: session_start() / session_write_close() in a loop
// for SECONDS over SESSIONS sessions of about 2 KB, as a page does on each request (with
// php-memcached: a connection, ADD of the lock, GET, SET, DELETE, QUIT). Prints the requests
// done as JSON.
//
//   php bench/php-session-loop.php HOST:PORT SECONDS stock|client WORKER SESSIONS IDS_FILE [fill]
//
// stock: php-memcached's handler, the extension's defaults (binary protocol, locking on);
// client: the php-client (php-client/bootstrap.php), whose ids the daemon mints.
// IDS_FILE keeps the session ids between runs (the minted ones cannot be named in advance);
// `fill` goes on past SECONDS until every session exists, so that a measured run that follows
// visits existing sessions only.
[$address, $seconds, $handler, $worker, $sessions, $idsFile] = array_slice($argv, 1, 6);
$fill = ($argv[7] ?? '') === 'fill';
ini_set('session.use_cookies', '0');
ini_set('session.cache_limiter', '');
ini_set('session.save_path', $address);
if ($handler === 'client') {
    require __DIR__ . '/../php-client/bootstrap.php';
} else {
    ini_set('session.save_handler', 'memcached');
    // The loop names its sessions itself.
    ini_set('session.use_strict_mode', '0');
}
$ids = is_file($idsFile) ? json_decode((string) file_get_contents($idsFile), true) : [];
$requests = 0;
$until = microtime(true) + (float) $seconds;
while (microtime(true) < $until || ($fill && $requests < (int) $sessions)) {
    $slot = $requests % (int) $sessions;
    $id = $ids[$slot] ?? ($handler === 'client' ? null : sprintf('bench%02dsession%05d', $worker, $slot));
    if ($id !== null) {
        session_id($id);
    }
    if (!session_start()) {
        fwrite(STDERR, "session_start failed\n");
        exit(1);
    }
    $_SESSION['profile'] ??= str_repeat('x', 2000);
    $_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
    $ids[$slot] = session_id();
    session_write_close();
    $requests++;
}
file_put_contents($idsFile, json_encode($ids));
echo json_encode(['requests' => $requests]), "\n";
