<?php

declare(strict_types=1);

namespace SessionCluster\Tests;

use SessionCluster\DaemonSessionIdAuthority;
use SessionCluster\Owners;
use SessionCluster\SessionIdAuthority;

/**
 * The real daemon's authority, except that the owners of the ids named here are answered as after
 * a failover: their named master is dead and FAILOVER_MASTER serves them. Minting, and every
 * session data move the handler makes, still go to the real daemon; only the owners query is
 * staged, because killing the named master is a cluster test of its own.
 */
final class FailedOverOwners implements SessionIdAuthority
{
    public const FAILOVER_MASTER = 'acting-master';

    /** @param list<string> $failedOverIds */
    public function __construct(
        private readonly DaemonSessionIdAuthority $daemon,
        private readonly array $failedOverIds,
    ) {
    }

    public function mint(): string
    {
        return $this->daemon->mint();
    }

    public function mintReplacing(string $oldId): string
    {
        return $this->daemon->mintReplacing($oldId);
    }

    public function owners(string $id): Owners
    {
        $real = $this->daemon->owners($id);
        if (!in_array($id, $this->failedOverIds, true)) {
            return $real;
        }
        return new Owners(
            idKind: $real->idKind,
            master: self::FAILOVER_MASTER,
            backup: null,
            self: $real->self,
            namedMaster: $real->namedMaster,
            namedBackup: $real->namedBackup,
            revision: $real->revision,
        );
    }
}
