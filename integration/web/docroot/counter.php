<?php
// The test web farm's page: counts a browser's visits in its session, with whatever session
// handler the pool configured, and says who served it. One JSON object:
//   server, pool      which PHP server (php1..php3) and pool (memcached|memcache|client)
//   id, visits        the session id and $_SESSION['visits'] after this request
//   locked_at, released_at   microtime(true) just after session_start() returned and just before
//                     session_write_close(): inside the session lock, so for one session these
//                     intervals never overlap, whichever servers ran the requests
// ?reset=1 sets visits to 0 instead of counting; ?hold_ms=N keeps the session (and its lock) N ms.
// Any PHP warning or a failed session call answers 500 with the messages.
declare(strict_types=1);

$errors = [];
set_error_handler(function (int $no, string $message) use (&$errors): bool {
    $errors[] = $message;
    return false; // still logged, so the server's error log shows it too
});

function answer(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body + [
        'server' => getenv('FARM_SERVER'),
        'pool' => getenv('FARM_POOL'),
        'handler' => ini_get('session.save_handler'),
        'save_path' => ini_get('session.save_path'),
        'binary' => ini_get('memcached.sess_binary_protocol'),
        'pid' => getmypid(),
    ]), "\n";
}

if (!session_start()) {
    answer(500, ['error' => 'session_start failed', 'errors' => $errors]);
    exit;
}
$lockedAt = microtime(true);
if (isset($_GET['reset'])) {
    $_SESSION['visits'] = 0;
} else {
    $_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
}
$hold = (int) ($_GET['hold_ms'] ?? 0);
if ($hold > 0) {
    usleep($hold * 1000);
}
$visits = $_SESSION['visits'];
$id = session_id();
$releasedAt = microtime(true);
if (!session_write_close() || $errors !== []) {
    answer(500, ['error' => 'session_write_close failed or warned', 'errors' => $errors, 'id' => $id]);
    exit;
}
answer(200, ['id' => $id, 'visits' => $visits, 'locked_at' => $lockedAt, 'released_at' => $releasedAt]);
