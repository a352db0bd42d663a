<?php
// Many session requests in one long-running PHP process, for the cluster tests: each iteration is
// what one web request does (session_id, session_start, change $_SESSION, session_write_close),
// with the session settings given by the test through `php -d`. One line per session on stdout,
// flushed as it happens, so the test can follow progress while the process runs.
//
// Usage:
//   php cluster-sessions.php write PREFIX FROM COUNT TAG
//     writes sessions PREFIX.FROM .. PREFIX.(FROM+COUNT-1), each with $_SESSION['v'] = "TAG:<i>"
//     (plus some padding), and prints per session:
//       ACK <id>              session_start() and session_write_close() both returned true and
//                             nothing warned
//       FAIL <id> <reason>    anything else (reason: which call failed, and the warnings)
//     PHP 8.2's session_write_close() returns true even when the save handler failed to write
//     (it only warns "Failed to write session data"), so a warning makes the write unacknowledged.
//   php cluster-sessions.php read
//     reads lines "<id> <expected v>" on stdin; for each does what a request that only reads the
//     session does (session_start(), look, session_write_close() changing nothing) and prints:
//       OK <id>               $_SESSION['v'] is the expected value
//       MISSING <id>          the session is empty (the store had nothing under that id)
//       MISMATCH <id> <got>   the session holds another value (an older write, another session)
//       FAIL <id> <reason>    session_start() failed or warned
//     and, after one of the first three, if ending the request warned:
//       WARN <id> <reason>
//     Not read_and_close: pecl memcache 4.0 releases its lock only when it writes (with
//     read_and_close or session_abort() the lock stays until memcache.lock_timeout, real memcached
//     too), so every later request on the session would wait. With session.lazy_write=1
//     php-memcached only touches an unchanged session; pecl memcache writes it back unchanged.
//   At the end both print one line: DONE <sessions handled>.

$warnings = [];
set_error_handler(function (int $no, string $msg) use (&$warnings) {
    $warnings[] = $msg;
    return true;
});

function reason(string $what, array $warnings): string
{
    $text = $what . ($warnings ? ': ' . implode(' | ', $warnings) : '');
    return str_replace(["\r", "\n"], ' ', $text);
}

function out(string $line): void
{
    fwrite(STDOUT, $line . "\n");
}

$action = $argv[1] ?? '';
$handled = 0;

if ($action === 'write') {
    [$prefix, $from, $count, $tag] = [$argv[2] ?? '', (int) ($argv[3] ?? 0), (int) ($argv[4] ?? 0), $argv[5] ?? 'w'];
    // About the size of a small real session: a few fields and ~200 bytes.
    $pad = str_repeat('x', 160);
    for ($i = $from; $i < $from + $count; $i++) {
        $id = $prefix . $i;
        $warnings = [];
        session_id($id);
        if (!session_start()) {
            out("FAIL $id " . reason('session_start', $warnings));
            $handled++;
            continue;
        }
        $_SESSION['v'] = "$tag:$i";
        $_SESSION['user'] = "user$i";
        $_SESSION['pad'] = $pad;
        if (session_write_close() && !$warnings) {
            out("ACK $id");
        } else {
            out("FAIL $id " . reason('session_write_close', $warnings));
        }
        $handled++;
    }
} elseif ($action === 'read') {
    while (($line = fgets(STDIN)) !== false) {
        $line = trim($line);
        if ($line === '') {
            continue;
        }
        [$id, $expected] = explode(' ', $line, 2);
        $warnings = [];
        $_SESSION = [];
        session_id($id);
        $handled++;
        if (!session_start() || $warnings) {
            out("FAIL $id " . reason('session_start', $warnings));
            if (session_status() === PHP_SESSION_ACTIVE) {
                session_abort();
            }
            continue;
        }
        if (!isset($_SESSION['v'])) {
            out("MISSING $id");
        } elseif ($_SESSION['v'] !== $expected) {
            out("MISMATCH $id " . str_replace(' ', '_', (string) json_encode($_SESSION['v'])));
        } else {
            out("OK $id");
        }
        $warnings = [];
        if (!session_write_close() || $warnings) {
            out("WARN $id " . reason('session_write_close', $warnings));
        }
    }
} else {
    fwrite(STDERR, "unknown action $action\n");
    exit(2);
}
out("DONE $handled");
