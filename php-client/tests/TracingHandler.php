<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\SessionHandler;

/**
 * Passes every call on to the handler and notes it, with the id it names and what it answered or
 * threw, so a test sees the order PHP called the handler in and the ids PHP went on with.
 */
final class TracingHandler implements \SessionHandlerInterface, \SessionIdInterface, \SessionUpdateTimestampHandlerInterface
{
    /** @param list<string> $calls */
    public function __construct(private readonly SessionHandler $handler, private array &$calls)
    {
    }

    public function open(string $path, string $name): bool
    {
        return $this->trace('open', null, fn () => $this->handler->open($path, $name));
    }

    public function close(): bool
    {
        return $this->trace('close', null, fn () => $this->handler->close());
    }

    public function read(string $id): string|false
    {
        return $this->trace('read', $id, fn () => $this->handler->read($id));
    }

    public function write(string $id, string $data): bool
    {
        return $this->trace('write', $id, fn () => $this->handler->write($id, $data));
    }

    public function destroy(string $id): bool
    {
        return $this->trace('destroy', $id, fn () => $this->handler->destroy($id));
    }

    public function gc(int $max_lifetime): int|false
    {
        return $this->trace('gc', null, fn () => $this->handler->gc($max_lifetime));
    }

    public function create_sid(): string
    {
        return $this->trace('create_sid', null, fn () => $this->handler->create_sid());
    }

    public function validateId(string $id): bool
    {
        return $this->trace('validateId', $id, fn () => $this->handler->validateId($id));
    }

    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->trace('updateTimestamp', $id, fn () => $this->handler->updateTimestamp($id, $data));
    }

    /**
     * @template T
     * @param callable(): T $call
     * @return T
     */
    private function trace(string $method, ?string $id, callable $call): mixed
    {
        try {
            $answer = $call();
        } catch (\Throwable $e) {
            $this->calls[] = sprintf('%s(%s) threw %s', $method, $id ?? '', get_class($e));
            throw $e;
        }
        $this->calls[] = sprintf('%s(%s) = %s', $method, $id ?? '', is_string($answer) && $method === 'read' ? 'data' : json_encode($answer));
        return $answer;
    }
}
