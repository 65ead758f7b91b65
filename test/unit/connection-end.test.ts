import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionEnd } from '../../src/ssh/connection-end.js';

describe('ConnectionEnd', () => {
  it('ends once: teardown before the listeners, each listener once, a late one at once, an unsubscribed one never', () => {
    const end = new ConnectionEnd();
    const heard: string[] = [];
    end.listen((e) => heard.push(`a ${e.message}`));
    const off = end.listen((e) => heard.push(`b ${e.message}`));
    off();
    assert.equal(end.reason === undefined, true); // not narrowing end.reason for the checks below
    assert.equal(end.end(new Error('cut'), () => heard.push('teardown')), true);
    assert.equal(end.end(new Error('again'), () => heard.push('teardown again')), false);
    end.listen((e) => heard.push(`late ${e.message}`));
    assert.deepEqual(heard, ['teardown', 'a cut', 'late cut']);
    assert.equal(end.reason?.message, 'cut');
  });
});
