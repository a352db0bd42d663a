/** The logger's format when --log-format is not given: who reads stdout decides. */
import { describe, expect, it } from 'vitest';
import { defaultLogFormat } from '../src/log.js';

describe('defaultLogFormat', () => {
  it('is pretty for a terminal and json for a pipe, a file or the journal', () => {
    expect(defaultLogFormat(true)).toBe('pretty');
    expect(defaultLogFormat(false)).toBe('json');
  });
});
