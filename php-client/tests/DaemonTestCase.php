<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use PHPUnit\Framework\TestCase;
use SessionCluster\DaemonSessionIdAuthority;
use SessionCluster\Options;
use SessionCluster\SessionHandler;
use SessionCluster\SessionIdAuthority;
use SessionCluster\Transport\Transport;
use SessionCluster\Transport\TransportFactory;

/**
 * Base of the tests that talk to real daemons with the transport named by
 * SESSION_CLUSTER_TRANSPORT, so every transport runs the same suite.
 */
abstract class DaemonTestCase extends TestCase
{
    /** Minted ids, format v1 (src/cluster/placement/session-id.ts). */
    public const MINTED_ID_PATTERN = '/^1[0-9a-zA-Z,-]{37,208}$/D';

    /**
     * A handler on $server (default: the single node) with the transport under test.
     *
     * @param array<string, mixed> $options
     */
    protected static function handler(?string $server = null, array $options = [], ?SessionIdAuthority $ids = null): SessionHandler
    {
        $settings = Options::fromArray(TestEnvironment::handlerOptions($server ?? TestEnvironment::singleNode(), $options + ['timeout_ms' => 2000]));
        $transport = TransportFactory::create($settings->transport, $settings->server, $settings->binary, $settings->timeoutMs / 1000, $settings->credentials);
        return new SessionHandler($transport, $settings, $ids);
    }

    protected static function transport(?string $server = null): Transport
    {
        return TestEnvironment::transport($server ?? TestEnvironment::singleNode());
    }

    protected static function authority(?string $server = null): DaemonSessionIdAuthority
    {
        return new DaemonSessionIdAuthority(self::transport($server));
    }

    /** A session that exists on the daemon: minted through $handler, written, lock released. */
    protected static function createSession(SessionHandler $handler, string $data): string
    {
        self::assertTrue($handler->open('', 'PHPSESSID'));
        $id = $handler->create_sid();
        self::assertSame('', $handler->read($id));
        self::assertTrue($handler->write($id, $data));
        self::assertTrue($handler->close());
        return $id;
    }

    /**
     * Runs $action and returns its result with the PHP errors it raised (level => messages),
     * instead of letting PHPUnit turn the first one into an exception. Errors silenced with @ are
     * not collected.
     *
     * @template T
     * @param callable(): T $action
     * @return array{0: T, 1: list<array{int, string}>}
     */
    protected static function collectErrors(callable $action): array
    {
        $errors = [];
        set_error_handler(static function (int $level, string $message) use (&$errors): bool {
            if ((error_reporting() & $level) === 0) {
                return true;
            }
            $errors[] = [$level, $message];
            return true;
        });
        try {
            $result = $action();
        } finally {
            restore_error_handler();
        }
        return [$result, $errors];
    }

    /**
     * Starts `php <ini> <script>` with JOB=$job in its environment, without the variable that keeps
     * bootstrap.php from registering (a child is a fresh request). Returns the process and its
     * stdout pipe; stderr goes to a temporary file, read by finishPhp().
     *
     * @param array<string, mixed> $job
     * @param list<string> $ini
     * @return array{process: resource, stdout: resource, stderr: resource}
     */
    protected static function startPhp(string $script, array $job, array $ini = []): array
    {
        $command = [PHP_BINARY];
        $settings = [
            'display_errors=stderr', 'log_errors=0', 'error_reporting=-1', 'session.use_cookies=0',
            'session.cache_limiter=', 'session.serialize_handler=php', 'session.gc_probability=0',
            'max_execution_time=0', ...$ini,
        ];
        foreach ($settings as $setting) {
            array_push($command, '-d', $setting);
        }
        $command[] = $script;
        $env = getenv();
        unset($env['SESSION_CLUSTER_NO_AUTOREGISTER']);
        $env['JOB'] = json_encode($job, JSON_THROW_ON_ERROR);
        $stderr = tmpfile();
        self::assertNotFalse($stderr);
        $process = proc_open($command, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => $stderr], $pipes, null, $env);
        self::assertIsResource($process, 'proc_open ' . implode(' ', $command));
        return ['process' => $process, 'stdout' => $pipes[1], 'stderr' => $stderr];
    }

    /**
     * Waits for a process from startPhp().
     *
     * @param array{process: resource, stdout: resource, stderr: resource} $child
     * @return array{exitCode: int, stdout: string, stderr: string}
     */
    protected static function finishPhp(array $child): array
    {
        $stdout = (string) stream_get_contents($child['stdout']);
        fclose($child['stdout']);
        $exitCode = proc_close($child['process']);
        rewind($child['stderr']);
        $stderr = (string) stream_get_contents($child['stderr']);
        fclose($child['stderr']);
        return ['exitCode' => $exitCode, 'stdout' => $stdout, 'stderr' => $stderr];
    }

    /** The data key of session $id in the default layout. */
    protected static function dataKey(string $id): string
    {
        return Options::DEFAULT_PREFIX . $id;
    }

    protected static function lockKey(string $id): string
    {
        return Options::DEFAULT_PREFIX . 'lock.' . $id;
    }

    /** $id with the character at $position replaced by another one of the id alphabet. */
    protected static function tampered(string $id, int $position): string
    {
        $char = $id[$position];
        $id[$position] = $char === 'a' ? 'b' : 'a';
        return $id;
    }
}
