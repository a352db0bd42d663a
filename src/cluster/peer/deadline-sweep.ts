/**
 * One timer for all the requests in flight on a link, instead of one per request: creating and
 * clearing a timer for every forward and copy cost more than the rest of the request's
 * bookkeeping. The timer is armed for the earliest deadline watched; when it fires, the owner
 * expires every request whose deadline has passed and names the next earliest deadline, for which
 * the timer is armed again. Requests answered in time are never looked at: the timer fires at
 * most once per earliest deadline, and then finds, on a busy link, only requests sent since.
 * A request still times out at its own deadline, to the millisecond of the timer.
 */
export class DeadlineSweep {
  private timer: NodeJS.Timeout | null = null;
  /** the deadline the timer is armed for; Infinity when it is not armed */
  private armedFor = Infinity;

  constructor(
    /**
     * Expires what is due at `now`; returns the earliest deadline still watched (Infinity: none).
     */
    private readonly expire: (now: number) => number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** A deadline to be swept at (ms, on `clock`). */
  watch(deadline: number): void {
    if (deadline < this.armedFor) this.arm(deadline);
  }

  /** Stops the timer (the owner has nothing in flight any more, or is closing). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
  }

  private arm(deadline: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedFor = deadline;
    this.timer = setTimeout(this.fire, Math.max(1, deadline - this.clock()));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Infinity;
    const next = this.expire(this.clock());
    if (next !== Infinity) this.arm(next);
  };
}
