<?php

declare(strict_types=1);

namespace SessionCluster\Transport;

/**
 * pecl memcache's client as it is, except that PHP 8.2 allows it dynamic properties: pecl memcache
 * 4.0 stores its connection and failure callback in properties it never declares, and PHP 8.2
 * would report each as deprecated on every request.
 *
 * @internal used by MemcacheTransport
 */
#[\AllowDynamicProperties]
final class DynamicPropertiesMemcache extends \Memcache
{
}
