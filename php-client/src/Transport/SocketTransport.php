<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

use SessionCluster\Exception\TransportException;
use SessionCluster\ServerAddress;
use SessionCluster\SessionKeys;

/**
 * The memcached ascii protocol over a plain stream (TCP or unix socket), for hosts without either
 * memcached extension. Commands and replies as in memcached's protocol.txt ("Storage commands",
 * "Retrieval command", "Deletion", "Touch").
 *
 * After any failure (connection error, timeout, malformed reply) the connection is dropped: the
 * position in the reply stream is unknown, and the next command reconnects.
 */
final class SocketTransport implements Transport
{
    /** protocol.txt: "the length limit of a key is set at 250 characters" */
    private const MAX_KEY_LENGTH = 250;

    /** @var resource|null */
    private $stream = null;

    public function __construct(
        private readonly ServerAddress $address,
        private readonly float $timeoutSeconds = 1.0,
        private readonly ?Credentials $credentials = null,
    ) {
    }

    public function address(): ServerAddress
    {
        return $this->address;
    }

    public function get(string $key): ?string
    {
        return $this->getMany([$key])[$key] ?? null;
    }

    public function getMany(array $keys): array
    {
        if ($keys === []) {
            return [];
        }
        foreach ($keys as $key) {
            $this->checkKey($key);
        }
        $this->send('get ' . implode(' ', $keys) . "\r\n");
        $found = [];
        for (;;) {
            $line = $this->readLine();
            if ($line === 'END') {
                return $found;
            }
            // VALUE <key> <flags> <bytes> [<cas unique>]
            if (preg_match('/^VALUE (\S+) (\d+) (\d+)(?: \d+)?$/D', $line, $m) !== 1) {
                $this->fail(sprintf('unexpected reply to get: "%s"', self::printable($line)));
            }
            $value = $this->readBytes((int) $m[3] + 2);
            if (substr($value, -2) !== "\r\n") {
                $this->fail('a value of get is not followed by \r\n');
            }
            $found[$m[1]] = substr($value, 0, -2);
        }
    }

    public function add(string $key, string $value, int $exptime): bool
    {
        return $this->store('add', $key, $value, $exptime);
    }

    public function set(string $key, string $value, int $exptime): void
    {
        if (!$this->store('set', $key, $value, $exptime)) {
            throw new TransportException(sprintf('%s refused to store "%s" (NOT_STORED)', $this->address, SessionKeys::shown($key)));
        }
    }

    public function delete(string $key): bool
    {
        $this->checkKey($key);
        $this->send("delete {$key}\r\n");
        return $this->expectOneOf('delete', $this->readLine(), 'DELETED', 'NOT_FOUND');
    }

    public function supportsTouch(): bool
    {
        return true;
    }

    public function touch(string $key, int $exptime): bool
    {
        $this->checkKey($key);
        $this->send("touch {$key} {$exptime}\r\n");
        return $this->expectOneOf('touch', $this->readLine(), 'TOUCHED', 'NOT_FOUND');
    }

    public function close(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
            $this->stream = null;
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    /** @return bool true on STORED, false on NOT_STORED */
    private function store(string $command, string $key, string $value, int $exptime): bool
    {
        $this->checkKey($key);
        // <command name> <key> <flags> <exptime> <bytes>\r\n<data block>\r\n
        $this->send(sprintf("%s %s 0 %d %d\r\n", $command, $key, $exptime, strlen($value)) . $value . "\r\n");
        return $this->expectOneOf($command, $this->readLine(), 'STORED', 'NOT_STORED');
    }

    /** true for $yes, false for $no; anything else is a failure */
    private function expectOneOf(string $command, string $line, string $yes, string $no): bool
    {
        if ($line === $yes) {
            return true;
        }
        if ($line === $no) {
            return false;
        }
        $this->fail(sprintf('unexpected reply to %s: "%s"', $command, self::printable($line)));
    }

    private function checkKey(string $key): void
    {
        // A space or line break would end the key and let the rest be read as another command.
        if ($key === '' || strlen($key) > self::MAX_KEY_LENGTH || preg_match('/[\x00-\x20\x7f]/', $key) === 1) {
            throw new TransportException(sprintf(
                'key "%s" is not a memcached key (1 to %d bytes, no spaces or control characters)',
                self::printable($key),
                self::MAX_KEY_LENGTH,
            ));
        }
    }

    /** @return resource */
    private function connection()
    {
        if ($this->stream !== null) {
            return $this->stream;
        }
        $errno = 0;
        $error = '';
        $stream = @stream_socket_client($this->address->uri(), $errno, $error, $this->timeoutSeconds);
        if ($stream === false) {
            throw new TransportException(sprintf('%s: cannot connect: %s (%d)', $this->address, $error !== '' ? $error : 'unknown error', $errno));
        }
        $seconds = (int) floor($this->timeoutSeconds);
        stream_set_timeout($stream, $seconds, (int) (($this->timeoutSeconds - $seconds) * 1_000_000));
        $this->stream = $stream;
        if ($this->credentials !== null) {
            // The daemon's ascii authentication (memcached -Y): a first set whose data is "user password".
            $token = $this->credentials->username . ' ' . $this->credentials->password;
            $this->send(sprintf("set session-cluster-auth 0 0 %d\r\n%s\r\n", strlen($token), $token));
            $line = $this->readLine();
            if ($line !== 'STORED') {
                $this->fail(sprintf('authentication as %s refused: %s', $this->credentials->username, self::printable($line)));
            }
        }
        return $stream;
    }

    private function send(string $bytes): void
    {
        $stream = $this->connection();
        $offset = 0;
        $length = strlen($bytes);
        while ($offset < $length) {
            $written = @fwrite($stream, $offset === 0 ? $bytes : substr($bytes, $offset));
            if ($written === false || $written === 0) {
                $this->fail($this->timedOut() ? 'timed out sending a command' : 'connection lost while sending a command');
            }
            $offset += $written;
        }
    }

    private function readLine(): string
    {
        $line = @fgets($this->connection());
        if ($line === false) {
            $this->fail($this->timedOut() ? 'timed out waiting for a reply' : 'connection closed before a reply');
        }
        if (!str_ends_with($line, "\r\n")) {
            $this->fail(sprintf('reply line "%s" is not ended by \r\n', self::printable($line)));
        }
        $line = substr($line, 0, -2);
        if ($line === 'ERROR' || str_starts_with($line, 'CLIENT_ERROR') || str_starts_with($line, 'SERVER_ERROR')) {
            $this->fail(sprintf('daemon answered "%s"', self::printable($line)));
        }
        return $line;
    }

    private function readBytes(int $count): string
    {
        $stream = $this->connection();
        $data = '';
        while (strlen($data) < $count) {
            $chunk = @fread($stream, $count - strlen($data));
            if ($chunk === false || $chunk === '') {
                $this->fail($this->timedOut() ? 'timed out reading a value' : 'connection closed in the middle of a value');
            }
            $data .= $chunk;
        }
        return $data;
    }

    private function timedOut(): bool
    {
        return $this->stream !== null && (stream_get_meta_data($this->stream)['timed_out'] ?? false);
    }

    private function fail(string $reason): never
    {
        $this->close();
        throw new TransportException(sprintf('%s: %s', $this->address, $reason));
    }

    private static function printable(string $bytes): string
    {
        // A reply line can name a key, and so a session id: cut (SessionKeys::shown).
        $shown = addcslashes(SessionKeys::shown(substr($bytes, 0, 200)), "\0..\37\177..\377");
        return strlen($bytes) > 200 ? $shown . '...' : $shown;
    }
}
