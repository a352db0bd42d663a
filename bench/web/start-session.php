<?php
// What the web benches' pages (bench/web/*-page.php) share: the session started with PHP's
// warnings collected, and a failed start answered with an HTTP error the load driver counts.
// Installed beside the page in the bench's docroot (bench/lib.sh, web_docroot).

/**
 * Starts the session; PHP's warnings of this request go to $errors. A session_start() that fails
 * answers $failStatus with the warnings and ends the request.
 *
 * @param list<string> $errors
 */
function bench_start_session(int $failStatus, array &$errors): void
{
    set_error_handler(function (int $no, string $msg) use (&$errors) {
        $errors[] = $msg;
        return true;
    });
    if (!session_start()) {
        http_response_code($failStatus);
        echo 'session_start failed: ', implode('; ', $errors), "\n";
        exit;
    }
}
