/**
 * Binary protocol numbers (memcached's protocol_binary.h). They are part of the wire format:
 * never renumber.
 */
export const REQUEST_MAGIC = 0x80;
export const RESPONSE_MAGIC = 0x81;
export const HEADER_LENGTH = 24;

export enum Opcode {
  Get = 0x00,
  Set = 0x01,
  Add = 0x02,
  Replace = 0x03,
  Delete = 0x04,
  Increment = 0x05,
  Decrement = 0x06,
  Quit = 0x07,
  Flush = 0x08,
  GetQ = 0x09,
  Noop = 0x0a,
  Version = 0x0b,
  GetK = 0x0c,
  GetKQ = 0x0d,
  Append = 0x0e,
  Prepend = 0x0f,
  Stat = 0x10,
  SetQ = 0x11,
  AddQ = 0x12,
  ReplaceQ = 0x13,
  DeleteQ = 0x14,
  IncrementQ = 0x15,
  DecrementQ = 0x16,
  QuitQ = 0x17,
  FlushQ = 0x18,
  AppendQ = 0x19,
  PrependQ = 0x1a,
  Verbosity = 0x1b,
  Touch = 0x1c,
  Gat = 0x1d,
  GatQ = 0x1e,
  SaslListMechs = 0x20,
  SaslAuth = 0x21,
  SaslStep = 0x22,
  GatK = 0x23,
  GatKQ = 0x24,
}

export enum BinaryStatus {
  Success = 0x0000,
  KeyNotFound = 0x0001,
  KeyExists = 0x0002,
  TooLarge = 0x0003,
  InvalidArguments = 0x0004,
  NotStored = 0x0005,
  NonNumeric = 0x0006,
  /** PROTOCOL_BINARY_RESPONSE_AUTH_ERROR: also memcached's answer to a command it has turned off */
  AuthError = 0x0020,
  UnknownCommand = 0x0081,
  OutOfMemory = 0x0082,
  /** memcached's PROTOCOL_BINARY_RESPONSE_ETMPFAIL */
  TemporaryFailure = 0x0086,
}

/** The texts memcached puts in an error response's body (proto_bin.c, write_bin_error). */
export const STATUS_MESSAGES: Partial<Record<BinaryStatus, string>> = {
  [BinaryStatus.KeyNotFound]: 'Not found',
  [BinaryStatus.KeyExists]: 'Data exists for key.',
  [BinaryStatus.TooLarge]: 'Too large.',
  [BinaryStatus.InvalidArguments]: 'Invalid arguments',
  [BinaryStatus.NotStored]: 'Not stored.',
  [BinaryStatus.NonNumeric]: 'Non-numeric server-side value for incr or decr',
  [BinaryStatus.UnknownCommand]: 'Unknown command',
  [BinaryStatus.OutOfMemory]: 'Out of memory',
};

/** Quiet opcodes send nothing on success (GETQ/GETKQ/GATQ/GATKQ: nothing on a miss either). */
export const QUIET_OPCODES: ReadonlySet<number> = new Set([
  Opcode.GetQ, Opcode.GetKQ, Opcode.SetQ, Opcode.AddQ, Opcode.ReplaceQ, Opcode.DeleteQ, Opcode.IncrementQ,
  Opcode.DecrementQ, Opcode.QuitQ, Opcode.FlushQ, Opcode.AppendQ, Opcode.PrependQ, Opcode.GatQ, Opcode.GatKQ,
]);

/** Opcodes whose replies carry the key (GETK and friends). */
export const KEYED_REPLY_OPCODES: ReadonlySet<number> = new Set([Opcode.GetK, Opcode.GetKQ, Opcode.GatK, Opcode.GatKQ]);
