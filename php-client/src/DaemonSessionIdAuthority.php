<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\SessionIdException;
use SessionCluster\Transport\Transport;

/**
 * Asks the local daemon through its read-only reserved keys. The daemon answers these gets itself,
 * whatever the protocol (mcrouter's `__mcrouter__.` keys are the precedent); writes to them are
 * refused.
 */
final class DaemonSessionIdAuthority implements SessionIdAuthority
{
    public const RESERVED_PREFIX = '__session_cluster__.';
    public const MINT = self::RESERVED_PREFIX . 'mint';
    public const OWNERS = self::RESERVED_PREFIX . 'owners.';
    public const VALID = self::RESERVED_PREFIX . 'valid.';
    public const SELF = self::RESERVED_PREFIX . 'self';

    /** Minted ids: format v1 starts with '1', 38 to 209 characters of PHP's id alphabet. */
    private const MINTED_ID_PATTERN = '/^1[0-9a-zA-Z,-]{37,208}$/D';

    public function __construct(private readonly Transport $transport)
    {
    }

    public function mint(): string
    {
        return $this->mintedId($this->transport->get(self::MINT), self::MINT);
    }

    public function mintReplacing(string $oldId): string
    {
        self::checkId($oldId);
        $key = self::MINT . '.' . $oldId;
        return $this->mintedId($this->transport->get($key), $key);
    }

    public function owners(string $id): Owners
    {
        self::checkId($id);
        $key = self::OWNERS . $id;
        $reply = $this->transport->get($key);
        if ($reply === null) {
            throw new SessionIdException(sprintf('%s: no answer to "%s" (a daemon without reserved keys?)', $this->transport->address(), $key));
        }
        return Owners::fromQueryString($reply);
    }

    /** Whether the daemon's cluster minted $id (its tag verifies under the cluster secret). */
    public function isClusterMinted(string $id): bool
    {
        self::checkId($id);
        return $this->transport->get(self::VALID . $id) === '1';
    }

    /** The id of the node this transport talks to. */
    public function nodeId(): string
    {
        $nodeId = $this->transport->get(self::SELF);
        if ($nodeId === null || $nodeId === '') {
            throw new SessionIdException(sprintf('%s: no answer to "%s" (a daemon without reserved keys?)', $this->transport->address(), self::SELF));
        }
        return $nodeId;
    }

    /** An id outside PHP's alphabet could carry a space or line break into the memcached key. */
    private static function checkId(string $id): void
    {
        if (!SessionKeys::isWellFormedId($id)) {
            throw new SessionIdException(sprintf('"%s" is not a session id (1 to 256 characters of [0-9a-zA-Z,-])', addcslashes(substr($id, 0, 64), "\0..\37\177..\377")));
        }
    }

    private function mintedId(?string $reply, string $key): string
    {
        if ($reply === null) {
            throw new SessionIdException(sprintf('%s: minted no id (a miss on "%s"; a daemon without reserved keys, or one not ready to mint)', $this->transport->address(), $key));
        }
        if (preg_match(self::MINTED_ID_PATTERN, $reply) !== 1) {
            throw new SessionIdException(sprintf('%s: "%s" answered "%s", not a minted session id', $this->transport->address(), $key, addcslashes(substr($reply, 0, 100), "\0..\37\177..\377")));
        }
        return $reply;
    }
}
