<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\ConfigurationException;
use SessionCluster\Exception\SessionClusterException;
use SessionCluster\Exception\SessionIdException;
use SessionCluster\Transport\Transport;
use SessionCluster\Transport\TransportFactory;

/**
 * PHP's session handler for session-cluster: ids minted by the cluster, strict mode, session
 * locking, and re-homing of sessions whose master failed.
 *
 * The order PHP calls it in (ext/session/session.c, php_session_initialize):
 *
 *     open -> [no id]          create_sid -> read -> write|updateTimestamp -> close
 *     open -> [id, strict mode] validateId -> (false: create_sid) -> read -> ...
 *
 * validateId is only called in strict mode, which is why register() turns strict mode on: it is
 * where ids the cluster never minted are refused and failed-over sessions are re-homed.
 *
 * Failures inside the handler methods PHP calls are reported with trigger_error(E_USER_WARNING)
 * and answered with false, which PHP turns into its own warning ("Failed to read session data"):
 * session_start() answers false and the browser's cookie is left as it is.
 *
 * Neither validateId nor the create_sid that follows it may fail by throwing, nor may validateId
 * answer false for an id it could not check: in each case PHP goes on with an id of its own
 * (php_session_initialize falls back to php_session_create_id) and sends it as the cookie, so the
 * user's next request starts a new, empty session. So an id that cannot be checked passes
 * validateId and its read throws (session_start() throws; no cookie is sent: the request ends
 * with an error, 500, which a load balancer can retry on another PHP server, whose daemon may
 * answer); a session whose re-homing fails keeps its id for this request. Only create_sid for a
 * new session throws when it cannot mint: there is no session to lose.
 */
final class SessionHandler implements \SessionHandlerInterface, \SessionIdInterface, \SessionUpdateTimestampHandlerInterface
{
    /** Characters of a session id shown in messages: an id is a credential, logs are not secret. */
    private const ID_CHARS_SHOWN = 6;

    private readonly SessionKeys $keys;
    private readonly SessionLock $lock;
    private readonly SessionIdAuthority $ids;

    /** The id whose lock this handler holds (taken by read, released by close or destroy). */
    private ?string $lockedId = null;

    /** Set by validateId for a failed-over session; the create_sid that follows re-homes it. */
    private ?string $rehomeFrom = null;

    /**
     * The id create_sid returned last, until it is read. session_regenerate_id() and
     * session_create_id() call validateId on a fresh id to detect a collision (true = taken); a
     * minted id cannot collide, and answering false spares them minting again.
     */
    private ?string $freshId = null;

    /**
     * Set by validateId when the daemon could not be asked about an id: PHP goes on to read it,
     * and the read throws this instead (see the class comment).
     */
    private ?SessionIdException $unchecked = null;

    /** The id $unchecked is about. */
    private ?string $uncheckedId = null;

    public function __construct(
        private readonly Transport $transport,
        private readonly Options $options,
        ?SessionIdAuthority $ids = null,
    ) {
        $this->keys = new SessionKeys($options->prefix);
        $this->lock = new SessionLock($transport, $this->keys, $options->lockExpire, $options->lockWaitTimeoutMs);
        $this->ids = $ids ?? new DaemonSessionIdAuthority($transport);
    }

    /**
     * A handler with its transport, from the options described in README.md.
     *
     * @param array<string, mixed> $options
     * @throws ConfigurationException
     */
    public static function create(array $options = []): self
    {
        $settings = Options::fromArray($options);
        $transport = TransportFactory::create($settings->transport, $settings->server, $settings->binary, $settings->timeoutMs / 1000, $settings->credentials);
        return new self($transport, $settings);
    }

    /**
     * Builds the handler, turns session.use_strict_mode on (see the class comment) and installs it
     * with session_set_save_handler(), which also registers session_write_close() at shutdown.
     * Call it before session_start().
     *
     * @param array<string, mixed> $options
     * @throws ConfigurationException
     */
    public static function register(array $options = []): self
    {
        if (session_status() === PHP_SESSION_ACTIVE) {
            throw new ConfigurationException('register() must run before session_start(): a session is active');
        }
        $handler = self::create($options);
        if (ini_set('session.use_strict_mode', '1') === false) {
            throw new ConfigurationException('cannot turn session.use_strict_mode on (headers already sent?)');
        }
        if (!session_set_save_handler($handler, true)) {
            throw new ConfigurationException('session_set_save_handler() refused the handler (headers already sent?)');
        }
        return $handler;
    }

    public function open(string $path, string $name): bool
    {
        // The daemon's address was settled when the handler was built; the connection opens lazily.
        return true;
    }

    public function close(): bool
    {
        $this->freshId = null;
        if ($this->lockedId === null) {
            return true;
        }
        $id = $this->lockedId;
        $this->lockedId = null;
        try {
            $this->lock->release($id);
            return true;
        } catch (SessionClusterException $e) {
            return $this->failed('lock release', $id, $e);
        }
    }

    /** @throws SessionIdException for an id that validateId could not check */
    public function read(string $id): string|false
    {
        $this->freshId = null;
        $unchecked = $this->unchecked;
        $this->unchecked = null;
        if ($unchecked !== null && $this->uncheckedId === $id) {
            throw $unchecked;
        }
        try {
            if ($this->lockedId !== $id) {
                $this->releaseHeldLock();
                $this->lock->acquire($id);
                $this->lockedId = $id;
            }
            $data = $this->transport->get($this->keys->dataKey($id));
        } catch (SessionClusterException $e) {
            $this->releaseHeldLock();
            return $this->failed('read', $id, $e);
        }
        if ($data !== null && MovedMarker::isMarker($data)) {
            // Only reachable without validateId (strict mode switched off after register()) or when
            // the old master came back before the marker expired. The old id then starts over as an
            // empty session; the data lives on under the new id, which the browser was sent.
            trigger_error(sprintf(
                'session-cluster: session %s was re-homed to %s; it reads as a new, empty session',
                self::shown($id),
                self::shown(MovedMarker::target($data) ?? '?'),
            ), E_USER_NOTICE);
            return '';
        }
        return $data ?? '';
    }

    public function write(string $id, string $data): bool
    {
        try {
            $this->transport->set($this->keys->dataKey($id), $data, Exptime::fromLifetime($this->options->sessionTtl()));
            return true;
        } catch (SessionClusterException $e) {
            return $this->failed('write', $id, $e);
        }
    }

    /** session.lazy_write: the data did not change, only its lifetime starts again. */
    public function updateTimestamp(string $id, string $data): bool
    {
        $key = $this->keys->dataKey($id);
        $exptime = Exptime::fromLifetime($this->options->sessionTtl());
        try {
            // A touch that misses (the item expired during the request) writes the data back.
            if (!$this->transport->supportsTouch() || !$this->transport->touch($key, $exptime)) {
                $this->transport->set($key, $data, $exptime);
            }
            return true;
        } catch (SessionClusterException $e) {
            return $this->failed('timestamp update', $id, $e);
        }
    }

    public function destroy(string $id): bool
    {
        try {
            $this->transport->delete($this->keys->dataKey($id));
            $this->transport->delete($this->keys->lockKey($id));
            if ($this->lockedId === $id) {
                $this->lockedId = null;
            }
            return true;
        } catch (SessionClusterException $e) {
            return $this->failed('destroy', $id, $e);
        }
    }

    /** The daemon expires sessions itself (their TTL is session.gc_maxlifetime). */
    public function gc(int $max_lifetime): int|false
    {
        return 0;
    }

    /**
     * True only for an id this cluster minted whose named master still serves it. Any other id is
     * refused, and PHP asks create_sid for a new one: a stock or forged id never becomes a session.
     * A failed-over id is refused too, after noting it, so that create_sid re-homes it.
     *
     * When the daemon cannot be asked, the id is neither valid nor invalid: it passes, and the
     * read that PHP runs next throws (the class comment says why validateId cannot refuse it or
     * throw).
     */
    public function validateId(string $id): bool
    {
        $this->rehomeFrom = null;
        $this->unchecked = null;
        if ($id === $this->freshId) {
            $this->freshId = null;
            return false;
        }
        if (!SessionKeys::isWellFormedId($id)) {
            return false;
        }
        try {
            $owners = $this->ids->owners($id);
        } catch (SessionClusterException $e) {
            // Not false, and no exception: either way PHP would send the browser a new id and
            // log the user out. The request fails in read instead; the browser keeps its cookie.
            $this->uncheckedId = $id;
            $this->unchecked = new SessionIdException(sprintf(
                'session-cluster: cannot check session id %s (daemon %s): %s',
                self::shown($id),
                $this->transport->address(),
                $this->reason($e),
            ), 0, $e);
            return true;
        }
        if ($owners->isFailedOver()) {
            $this->rehomeFrom = $id;
            return false;
        }
        return $owners->isMinted();
    }

    /**
     * A new id minted by the local daemon, which becomes the session's master. After validateId
     * refused a failed-over id, the session moves to the new id with its data (see rehome()); if
     * that fails, the session keeps its old id, served by the node that took it over, and a later
     * request re-homes it.
     *
     * Never a local random id: it would not name its owners. PHP has no failure answer for
     * create_sid, so a daemon that cannot mint for a new session makes session_start() throw
     * this exception.
     *
     * @throws SessionIdException
     */
    public function create_sid(): string
    {
        $oldId = $this->rehomeFrom;
        $this->rehomeFrom = null;
        if ($oldId !== null) {
            try {
                $id = $this->rehome($oldId);
            } catch (SessionClusterException $e) {
                trigger_error(sprintf(
                    'session-cluster: cannot re-home session %s (daemon %s): %s; it keeps its id for now',
                    self::shown($oldId),
                    $this->transport->address(),
                    $this->reason($e),
                ), E_USER_WARNING);
                return $oldId;
            }
            $this->freshId = $id;
            return $id;
        }
        try {
            $id = $this->ids->mint();
        } catch (SessionClusterException $e) {
            throw new SessionIdException(sprintf(
                'session-cluster: cannot create a session id (daemon %s): %s',
                $this->transport->address(),
                $this->reason($e),
            ), 0, $e);
        }
        $this->freshId = $id;
        return $id;
    }

    /**
     * Moves a failed-over session to a new id minted here, under the old id's lock so that
     * concurrent requests carrying the old id agree on one new id:
     * - the old data key holds a moved-marker: another request re-homed it already; follow it;
     * - else mint a replacement (revision + 1), copy the data to it, and leave a moved-marker under
     *   the old id for moved_marker_ttl seconds for requests still carrying the old cookie.
     *
     * @throws SessionClusterException
     */
    private function rehome(string $oldId): string
    {
        $this->lock->acquire($oldId);
        try {
            $oldKey = $this->keys->dataKey($oldId);
            $data = $this->transport->get($oldKey);
            if ($data !== null && MovedMarker::isMarker($data)) {
                return MovedMarker::target($data)
                    ?? throw new SessionIdException(sprintf('the moved-marker of session %s names no valid id', self::shown($oldId)));
            }
            $newId = $this->ids->mintReplacing($oldId);
            if ($data !== null) {
                $this->transport->set($this->keys->dataKey($newId), $data, Exptime::fromLifetime($this->options->sessionTtl()));
            }
            $this->transport->set($oldKey, MovedMarker::pointingTo($newId), Exptime::fromLifetime($this->options->movedMarkerTtl));
            return $newId;
        } finally {
            try {
                $this->lock->release($oldId);
            } catch (SessionClusterException) {
                // It expires after lock_expire; the re-home itself succeeded or reports its own error.
            }
        }
    }

    private function releaseHeldLock(): void
    {
        if ($this->lockedId === null) {
            return;
        }
        $id = $this->lockedId;
        $this->lockedId = null;
        try {
            $this->lock->release($id);
        } catch (SessionClusterException) {
            // Reported by the operation that failed first; the lock expires after lock_expire.
        }
    }

    private function failed(string $what, string $id, SessionClusterException $e): bool
    {
        trigger_error(sprintf(
            'session-cluster: %s of session %s failed (daemon %s): %s',
            $what,
            self::shown($id),
            $this->transport->address(),
            $this->reason($e),
        ), E_USER_WARNING);
        return false;
    }

    /** The exception's message without the daemon address the caller's message already names. */
    private function reason(SessionClusterException $e): string
    {
        $message = $e->getMessage();
        $address = $this->transport->address() . ': ';
        return str_starts_with($message, $address) ? substr($message, strlen($address)) : $message;
    }

    private static function shown(string $id): string
    {
        return strlen($id) > self::ID_CHARS_SHOWN ? substr($id, 0, self::ID_CHARS_SHOWN) . '...' : $id;
    }
}
