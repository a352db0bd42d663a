<?php
// Prepended (auto_prepend_file) to a page run by the PHP CLI: its session is SESSION_ID, kept by
// PHP's own files handler, except that every write fails when SESSION_WRITES_FAIL=1, as a write
// does when the session's daemon stops in the middle of the request. PHP then warns "Failed to
// write session data" and, in PHP 8.2, session_write_close() still answers true.
declare(strict_types=1);

final class FailingSessionWrites extends SessionHandler
{
    public function write(string $id, string $data): bool
    {
        return getenv('SESSION_WRITES_FAIL') === '1' ? false : parent::write($id, $data);
    }
}

session_set_save_handler(new FailingSessionWrites(), true);
session_id((string) getenv('SESSION_ID'));
