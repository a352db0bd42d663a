<?php

declare(strict_types=1);

namespace SessionCluster;

use SessionCluster\Exception\SessionIdException;

/**
 * The daemon's answer to `__session_cluster__.owners.<id>`: who serves a session now and, for an id
 * the cluster minted, whom the id itself names.
 */
final class Owners
{
    public const MINTED = 'minted';
    public const HASHED = 'hashed';

    public function __construct(
        /** minted: the id verifies as minted by this cluster; hashed: any other id */
        public readonly string $idKind,
        /** the node that serves the session now; null when the answering node knows no live member yet */
        public readonly ?string $master,
        /** null when there is no backup (a one-node cluster) */
        public readonly ?string $backup,
        /** the node that answered */
        public readonly string $self,
        /** minted ids only: the master named in the id */
        public readonly ?string $namedMaster = null,
        public readonly ?string $namedBackup = null,
        public readonly ?int $revision = null,
    ) {
    }

    /**
     * Parses the reply, a query string:
     * id_kind=minted|hashed&master=&backup=&self= [&named_master=&named_backup=&revision=].
     *
     * @throws SessionIdException on any other shape
     */
    public static function fromQueryString(string $reply): self
    {
        parse_str($reply, $fields);
        $text = static function (string $name, bool $required) use ($fields, $reply): ?string {
            $value = $fields[$name] ?? null;
            if ($value !== null && !is_string($value)) {
                throw new SessionIdException(sprintf('owners answer "%s": %s is not a single value', $reply, $name));
            }
            if ($required && ($value === null || $value === '')) {
                throw new SessionIdException(sprintf('owners answer "%s": %s is missing', $reply, $name));
            }
            return $value === '' ? null : $value;
        };
        $idKind = $text('id_kind', true);
        if ($idKind !== self::MINTED && $idKind !== self::HASHED) {
            throw new SessionIdException(sprintf('owners answer "%s": id_kind is neither minted nor hashed', $reply));
        }
        $minted = $idKind === self::MINTED;
        $revision = $minted ? $text('revision', true) : null;
        if ($revision !== null && preg_match('/^[0-9]+$/D', $revision) !== 1) {
            throw new SessionIdException(sprintf('owners answer "%s": revision is not a number', $reply));
        }
        return new self(
            idKind: $idKind,
            master: $text('master', false),
            backup: $text('backup', false),
            self: (string) $text('self', true),
            namedMaster: $minted ? $text('named_master', true) : null,
            namedBackup: $minted ? $text('named_backup', false) : null,
            revision: $revision === null ? null : (int) $revision,
        );
    }

    public function isMinted(): bool
    {
        return $this->idKind === self::MINTED;
    }

    /**
     * A minted id whose named master is dead or gone: another node serves it now. This is when the
     * session gets a new id naming a live master (re-homing). Without a known master nothing is
     * known to have failed, and nothing moves.
     */
    public function isFailedOver(): bool
    {
        return $this->isMinted() && $this->master !== null && $this->master !== $this->namedMaster;
    }
}
