/**
 * Statistics, declared once: each has a name (memcached's own where memcached has it), a type and
 * a one-line help, declared beside the code that counts it. `stats`, `stats settings`, /metrics
 * and the reference in docs/stats.md are views of the same declarations (catalog.ts lists them
 * all, in order). The models: Prometheus' client libraries (a metric is registered once with its
 * help and type) and memcached's `stats settings` (one table, printed as is).
 *
 * Counting stays plain field increments on each component's counters object; a definition only
 * says how to read and describe a field, so the hot path pays nothing for the registry.
 */

/** counter: only grows (until `stats reset`); gauge: goes up and down; text: a word, not a number. */
export type StatType = 'counter' | 'gauge' | 'text';

export interface StatDef {
  /** the `stats` name, memcached's where memcached has the figure */
  readonly name: string;
  readonly type: StatType;
  /** one line, for docs/stats.md and the /metrics HELP line */
  readonly help: string;
  /**
   * How /metrics shows it. Numbers: session_cluster_<name> (counters with _total) unless another
   * name is given here; null leaves it out (process ids, clocks, constants). Text: a label of the
   * session_cluster_info series, named here; absent, it is left out.
   */
  readonly metric?: string | null;
}

/** A statistic read off its source object when asked. */
export interface Stat<S> extends StatDef {
  read(source: S): number | string;
}

/** A definition for each field of a counters object: a field without one does not compile. */
export type CounterDefs<T> = { readonly [K in keyof T]: StatDef };

/**
 * Counter definitions as statistics that read their field: of the source itself, or of the
 * counters object `of` finds in it (a section whose source has gauges of its own too).
 */
export function countersToStats<T extends object, S = T>(defs: CounterDefs<T>, of: (source: S) => T = (source) => source as unknown as T): Array<Stat<S>> {
  return (Object.keys(defs) as Array<keyof T>).map((field) => ({
    ...defs[field],
    read: (source: S) => of(source)[field] as unknown as number,
  }));
}

/** One statistic's value now, with its definition. */
export interface Sample {
  readonly def: StatDef;
  readonly value: number | string;
}

/** The statistics one node shows, bound to the objects that hold them. */
export class StatsRegistry {
  private readonly bound: Array<{ def: StatDef; read: () => number | string }> = [];
  private readonly names = new Set<string>();

  /** Adds `stats`, read off `source`, after those already registered. A name is registered once. */
  add<S>(stats: ReadonlyArray<Stat<S>>, source: S): this {
    for (const stat of stats) {
      if (this.names.has(stat.name)) throw new Error(`statistic ${stat.name} is registered twice`);
      this.names.add(stat.name);
      const { read, ...def } = stat;
      this.bound.push({ def, read: () => read(source) });
    }
    return this;
  }

  /** Every statistic's value now, in registration order. */
  samples(): Sample[] {
    return this.bound.map(({ def, read }) => ({ def, value: read() }));
  }

  /** `stats` lines: name and value as text. */
  entries(): Array<[string, string]> {
    return this.bound.map(({ def, read }) => [def.name, String(read())]);
  }

  /** Registered names, in order. */
  get statNames(): string[] {
    return this.bound.map(({ def }) => def.name);
  }
}
