/** One error base class with a stable `code` per subclass, so callers and tests match on codes. */
export class SessionClusterError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A setting given on the command line or in the config file that cannot be used. */
export class ConfigError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

/** A listener that could not be opened (port in use, socket path taken, no permission). */
export class ListenError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_LISTEN', message);
  }
}
