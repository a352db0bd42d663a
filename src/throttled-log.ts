/**
 * A warning that can repeat thousands of times a second (evictions, refused connections) is
 * logged at once the first time, then at most once per interval with the count of what happened
 * since, so the log explains without flooding. Nothing is dropped: the last window is flushed.
 */
import type { Logger } from './log.js';

export class ThrottledWarning {
  private pending = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastLoggedAt = -Infinity;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly fields: () => Record<string, unknown>,
    private readonly intervalMs = 10_000,
  ) {}

  /** Counts `count` more occurrences. */
  add(count = 1): void {
    this.pending += count;
    const now = Date.now();
    if (now - this.lastLoggedAt >= this.intervalMs) {
      this.flush();
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs - (now - this.lastLoggedAt));
      this.timer.unref();
    }
  }

  /** Logs what is pending now (also called on stop). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending === 0) return;
    this.log.warn({ count: this.pending, ...this.fields() }, this.message);
    this.pending = 0;
    this.lastLoggedAt = Date.now();
  }
}
