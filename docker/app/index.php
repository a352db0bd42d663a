<?php
// Example page: counts visits in the session stored in session-cluster.
session_start();
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
