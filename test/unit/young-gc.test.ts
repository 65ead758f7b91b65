import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { YoungGcPacer } from '../../src/ssh/young-gc.js';

describe('YoungGcPacer', () => {
  it('collects once for every `everyBytes` noted, however the bytes come', () => {
    let collections = 0;
    const pacer = new YoungGcPacer(100, () => { collections++; });
    pacer.note(99);
    assert.equal(collections, 0);
    pacer.note(1);
    assert.equal(collections, 1, 'at exactly 100 bytes');
    for (let i = 0; i < 30; i++) pacer.note(10);
    assert.equal(collections, 4, '300 more bytes: three more');
    pacer.note(1000);
    assert.equal(collections, 5, 'one large note collects once, not ten times');
  });

  it('does nothing without a collector (Node started without --expose-gc)', () => {
    const pacer = new YoungGcPacer(1, undefined);
    assert.doesNotThrow(() => pacer.note(1_000_000));
  });

  it('with --expose-gc, the module\'s pacer runs real scavenges', () => {
    // A child Node with the flag: count its scavenges through --trace-gc.
    const script = `import('${new URL('../../src/ssh/young-gc.ts', import.meta.url).href}').then(({ youngGc }) => { for (let i = 0; i < 8; i++) youngGc.note(1024 * 1024); });`;
    const out = execFileSync(process.execPath, ['--expose-gc', '--trace-gc', '--import', 'tsx', '-e', script], { encoding: 'utf8' });
    const scavenges = out.split('\n').filter((l) => /Scavenge.*testing/.test(l)).length;
    assert.equal(scavenges, 4, out);
  });
});
