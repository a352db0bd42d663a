<?php

declare(strict_types=1);

namespace SessionCluster\Exception;

/** An option or a server address that cannot be used. */
final class ConfigurationException extends SessionClusterException
{
}
