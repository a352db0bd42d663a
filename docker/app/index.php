<?php
// Example page: counts visits in the session stored in session-cluster.
//
// session_start() answers false when the session could not be read (its daemon died in the middle
// of this request, say): PHP then goes on without a session, and the page would show a count of 1
// as if the user's session were gone. Answer 503 instead: the user tries again, the session is
// untouched.
if (!session_start()) {
    http_response_code(503);
    header('Retry-After: 1');
    header('Content-Type: text/plain');
    echo "session unavailable, try again\n";
    exit;
}
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$visits = $_SESSION['visits'];
// Written before anything is shown: PHP would otherwise write the session after the page went out,
// and a write that fails then (its daemon stopped in the middle of this request, say) would have
// shown the user a count the session never kept. A failed write answers 503 too.
//
// session_write_close() cannot tell: it answers true even when the save handler failed to write
// (PHP 8.2, ext/session php_session_flush). PHP reports the failure only as a warning, "Failed to
// write session data", which is caught here.
$writeFailed = null;
set_error_handler(function (int $type, string $message) use (&$writeFailed): bool {
    if (str_contains($message, 'Failed to write session data')) {
        $writeFailed = $message;
    }
    return false; // logged as usual
}, E_WARNING);
$closed = session_write_close();
restore_error_handler();
if (!$closed || $writeFailed !== null) {
    http_response_code(503);
    header('Retry-After: 1');
    header('Content-Type: text/plain');
    echo "session not saved, try again\n";
    exit;
}
header('Content-Type: text/plain');
printf(
    "session id: %s\nvisits:     %d\nhandler:    %s %s\nphp-fpm:    %s\n",
    session_id(),
    $visits,
    ini_get('session.save_handler'),
    ini_get('session.save_path'),
    gethostname()
);
