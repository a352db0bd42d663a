/** Membership's counters, read by `stats`. Background failures are counted here, never thrown. */
import type { CounterDefs, Stat } from '../../stats/registry.js';
import type { ClockOffsets } from './clock-offsets.js';

export class MembershipStats {
  heartbeatsSent = 0;
  heartbeatsReceived = 0;
  joinsSent = 0;
  joinsReceived = 0;
  leavesReceived = 0;
  suspicions = 0;
  deaths = 0;
  refutations = 0;
  staleIgnored = 0;
  malformed = 0;
  stalls = 0;
  sendErrors = 0;
  listenerErrors = 0;
}

export const MEMBERSHIP_STATS: CounterDefs<MembershipStats> = {
  heartbeatsSent: { name: 'cluster_heartbeats_sent', type: 'counter', help: 'heartbeats sent to members' },
  heartbeatsReceived: { name: 'cluster_heartbeats_received', type: 'counter', help: 'heartbeats received from members' },
  joinsSent: { name: 'cluster_joins_sent', type: 'counter', help: 'join requests sent to seeds' },
  joinsReceived: { name: 'cluster_joins_received', type: 'counter', help: 'join requests received from nodes joining through this one' },
  leavesReceived: { name: 'cluster_leaves_received', type: 'counter', help: 'announcements of members leaving on purpose (drain)' },
  suspicions: { name: 'cluster_suspicions', type: 'counter', help: 'members this node marked suspect (silent for half the failure timeout, or another member said so)' },
  deaths: { name: 'cluster_deaths', type: 'counter', help: 'members this node marked dead (silent for the failure timeout, or another member said so)' },
  refutations: { name: 'cluster_refutations', type: 'counter', help: 'times this node raised its incarnation to refute news that it was suspect or dead' },
  staleIgnored: { name: 'cluster_membership_stale_ignored', type: 'counter', help: 'membership news ignored because newer news of that member was known' },
  malformed: { name: 'cluster_membership_malformed', type: 'counter', help: 'membership messages or entries dropped because they were not well formed' },
  stalls: { name: 'cluster_stalls', type: 'counter', help: 'times this node\'s timers ran so late (a pause, a blocked event loop) that it gave every member a fresh failure window' },
  sendErrors: { name: 'cluster_membership_send_errors', type: 'counter', help: 'membership sends the transport threw on (a bug: sends never throw)' },
  listenerErrors: { name: 'cluster_membership_listener_errors', type: 'counter', help: 'membership event listeners that threw (a bug)' },
};

/** The members' clocks as this node measures them. */
export const CLOCK_STATS: ReadonlyArray<Stat<ClockOffsets>> = [
  {
    name: 'cluster_clock_offset_max_ms', type: 'gauge',
    help: 'how far the member whose clock is furthest from this node\'s is from it, either way, ms (measured from heartbeats; a warning is logged above 1 s)',
    read: (clocks) => clocks.offsets().reduce((max, [, offset]) => Math.max(max, Math.abs(offset)), 0),
  },
  {
    name: 'cluster_clock_offsets', type: 'text',
    help: 'each member\'s clock against this node\'s, as id:ms (positive: ahead), comma-separated',
    read: (clocks) => clocks.offsets().map(([member, offset]) => `${member}:${offset > 0 ? '+' : ''}${offset}`).join(','),
  },
];
