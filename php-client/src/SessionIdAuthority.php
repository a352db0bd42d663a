<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\SessionClusterException;

/**
 * Who mints session ids and says who owns them: the daemon (DaemonSessionIdAuthority). An
 * interface so tests can stage answers the cluster gives only in a failure, such as a failover.
 */
interface SessionIdAuthority
{
    /**
     * A new id whose master is the node asked.
     *
     * @throws SessionClusterException
     */
    public function mint(): string;

    /**
     * A new id for session $oldId, with the node asked as master and the old revision + 1.
     *
     * @throws SessionClusterException
     */
    public function mintReplacing(string $oldId): string;

    /** @throws SessionClusterException */
    public function owners(string $id): Owners;
}
