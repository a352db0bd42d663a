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
header('Content-Type: text/plain');
printf(
    "session id: %s\nvisits:     %d\nhandler:    %s %s\nphp-fpm:    %s\n",
    session_id(),
    $_SESSION['visits'],
    ini_get('session.save_handler'),
    ini_get('session.save_path'),
    gethostname()
);
