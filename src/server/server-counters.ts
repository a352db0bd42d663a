/** Connection and traffic counters of the listeners, read by `stats`. */
export class ServerCounters {
  currConnections = 0;
  totalConnections = 0;
  rejectedConnections = 0;
  bytesRead = 0;
  bytesWritten = 0;
}
