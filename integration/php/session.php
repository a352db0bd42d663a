<?php
// Drives one PHP session request from the command line, the way a web request would, with the
// session settings given by the test through `php -d`. Prints one JSON object on stdout:
//   {"ok": bool, "id": "...", "data": {...}, "status": int, "errors": [...]}
// Usage: php session.php ACTION [SESSION_ID] [JSON_DATA]
//   create  - start a new session (server-issued id), store JSON_DATA in it
//   read    - start the session SESSION_ID and report what it holds (writes nothing new)
//   update  - start SESSION_ID, merge JSON_DATA into it
//   destroy - start SESSION_ID, then session_destroy()
//   strict  - ask for SESSION_ID (never issued), start, report the id PHP ended up with
//   counter - start SESSION_ID, read 'counter', sleep SLEEP_MS (env), write counter + 1; with
//             HOLDS=1 (env) also append [locked at, done at] (microtime) to 'holds'
//   hold    - start SESSION_ID (taking its lock), print {"locked": true}, then sleep: for a test
//             that kills the worker while it holds the lock

$errors = [];
// Warnings from the session handler (lock failures, connection errors) go into the JSON, so the
// test can show them, and count as failure.
set_error_handler(function (int $no, string $msg) use (&$errors) {
    $errors[] = $msg;
    return true;
});

$action = $argv[1] ?? '';
$sid = $argv[2] ?? '';
$data = isset($argv[3]) ? json_decode($argv[3], true, 512, JSON_THROW_ON_ERROR) : [];

if ($sid !== '' && $action !== 'create') {
    session_id($sid);
}

$started = session_start();
$lockedAt = microtime(true);
$out = ['ok' => $started, 'id' => session_id(), 'action' => $action];

if ($started) {
    switch ($action) {
        case 'create':
        case 'update':
            foreach ($data as $k => $v) {
                $_SESSION[$k] = $v;
            }
            break;
        case 'read':
        case 'strict':
            break;
        case 'destroy':
            $out['before'] = $_SESSION;
            $out['ok'] = session_destroy();
            break;
        case 'counter':
            $n = $_SESSION['counter'] ?? 0;
            // Widen the race window: without a working lock, concurrent requests would read the
            // same value here and lose increments.
            usleep((int) (getenv('SLEEP_MS') ?: 20) * 1000);
            $_SESSION['counter'] = $n + 1;
            $_SESSION['writers'][] = getmypid();
            if (getenv('HOLDS') === '1') {
                $_SESSION['holds'][] = [$lockedAt, microtime(true)];
            }
            $out['read'] = $n;
            break;
        case 'hold':
            echo json_encode(['locked' => true, 'id' => session_id()]), "\n";
            flush();
            sleep(60);
            exit(3);
        default:
            fwrite(STDERR, "unknown action $action\n");
            exit(2);
    }
    $out['data'] = $_SESSION;
    if ($action !== 'destroy') {
        // Writes the session and releases the lock now, so a failed write shows up here.
        $out['ok'] = session_write_close();
    }
}

$out['status'] = session_status();
$out['errors'] = $errors;
echo json_encode($out), "\n";
exit($out['ok'] && !$errors ? 0 : 1);
