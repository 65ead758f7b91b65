import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPoint, type Point } from '../../src/metrics/line-protocol.js';

const t = 1_700_000_000_000_000_000n;

/** [what, point, expected line without its trailing newline, or undefined when nothing is written] */
const cases: Array<[string, Point, string | undefined]> = [
  // The shapes the mirror and the daemon send.
  [
    'mirror download',
    {
      measurement: 'sftp_mirror_download',
      tags: { server: 'example.com', type: 'directory', item: '2025 11 18' },
      fields: { bytes: 1024, duration_seconds: 2.5, bytes_per_second: 409.6 },
      time: t,
    },
    'sftp_mirror_download,item=2025\\ 11\\ 18,server=example.com,type=directory bytes=1024,duration_seconds=2.5,bytes_per_second=409.6 1700000000000000000',
  ],
  [
    'daemon upload, Date timestamp',
    {
      measurement: 'contentmonster_upload',
      tags: { vessel: 'ship-1', result: 'ok' },
      fields: { bytes: 1073741824, duration_seconds: 12.25, bytes_per_second: 87652393.5 },
      time: new Date(1_700_000_000_123),
    },
    'contentmonster_upload,result=ok,vessel=ship-1 bytes=1073741824,duration_seconds=12.25,bytes_per_second=87652393.5 1700000000123000000',
  ],

  // Escaping, as the line protocol reference says.
  ['measurement: comma and space', { measurement: 'a,b c', fields: { v: 1 } }, 'a\\,b\\ c v=1'],
  ['measurement: = is not escaped', { measurement: 'a=b', fields: { v: 1 } }, 'a=b v=1'],
  ['tag key and value: comma, equals, space', { measurement: 'm', tags: { 'k,=k ': 'v,=v ' }, fields: { v: 1 } }, 'm,k\\,\\=k\\ =v\\,\\=v\\  v=1'],
  ['tag: newline and carriage return become a space', { measurement: 'm', tags: { 'a\nb': 'c\r\nd' }, fields: { v: 1 } }, 'm,a\\ b=c\\ \\ d v=1'],
  ['field key: comma, equals, space, newline', { measurement: 'm', fields: { 'f,=f \n': 1 } }, 'm f\\,\\=f\\ \\ =1'],
  ['string field: quote and backslash', { measurement: 'm', fields: { s: 'say "hi" C:\\dir\\' } }, 'm s="say \\"hi\\" C:\\\\dir\\\\"'],
  ['string field: comma, equals, space are left alone', { measurement: 'm', fields: { s: 'a,b=c d' } }, 'm s="a,b=c d"'],
  ['string field: newline becomes a space', { measurement: 'm', fields: { s: 'one\ntwo\r' } }, 'm s="one two "'],
  ['empty string field is kept', { measurement: 'm', fields: { s: '' } }, 'm s=""'],

  // Backslashes: literal inside names, except where they would escape a separator.
  ['backslash inside a tag value is literal', { measurement: 'm', tags: { p: 'C:\\dir' }, fields: { v: 1 } }, 'm,p=C:\\dir v=1'],
  ['trailing backslashes in a tag value are dropped', { measurement: 'm', tags: { p: 'dir\\\\' }, fields: { v: 1 } }, 'm,p=dir v=1'],
  ['backslash before a space in a tag value is dropped', { measurement: 'm', tags: { p: 'a\\ b' }, fields: { v: 1 } }, 'm,p=a\\ b v=1'],
  ['trailing backslash in a measurement is dropped', { measurement: 'm\\', fields: { v: 1 } }, 'm v=1'],
  ['trailing backslash in a field key is dropped', { measurement: 'm', fields: { 'f\\': 1 } }, 'm f=1'],
  ['a tag value of only backslashes is left out', { measurement: 'm', tags: { p: '\\\\' }, fields: { v: 1 } }, 'm v=1'],

  // Tags.
  ['undefined and empty tags are left out', { measurement: 'm', tags: { a: undefined, b: '', c: 'x' }, fields: { v: 1 } }, 'm,c=x v=1'],
  ['tags sorted by key', { measurement: 'm', tags: { zeta: '1', Alpha: '2', alpha: '3', beta: '4' }, fields: { v: 1 } }, 'm,Alpha=2,alpha=3,beta=4,zeta=1 v=1'],
  ['no tags at all', { measurement: 'm', tags: {}, fields: { v: 1 } }, 'm v=1'],

  // Field values.
  ['numbers carry no i suffix', { measurement: 'm', fields: { a: 0, b: -3, c: 0.1 } }, 'm a=0,b=-3,c=0.1'],
  ['big integers print without exponent', { measurement: 'm', fields: { a: 1073741824, b: 2 ** 53, c: 1e21, d: -1e22 } }, 'm a=1073741824,b=9007199254740992,c=1000000000000000000000,d=-10000000000000000000000'],
  ['negative zero prints as 0', { measurement: 'm', fields: { a: -0 } }, 'm a=0'],
  ['booleans', { measurement: 'm', fields: { ok: true, failed: false } }, 'm ok=true,failed=false'],
  ['non-finite numbers are left out', { measurement: 'm', fields: { a: NaN, b: Infinity, c: -Infinity, d: 7 } }, 'm d=7'],

  // Nothing to write.
  ['no fields', { measurement: 'm', tags: { a: 'b' }, fields: {} }, undefined],
  ['only non-finite fields', { measurement: 'm', fields: { a: NaN, b: Infinity } }, undefined],
  ['empty measurement', { measurement: '', fields: { v: 1 } }, undefined],

  // Timestamps.
  ['bigint timestamp is nanoseconds', { measurement: 'm', fields: { v: 1 }, time: 5n }, 'm v=1 5'],
  ['Date timestamp is milliseconds × 1e6', { measurement: 'm', fields: { v: 1 }, time: new Date(Date.UTC(2025, 10, 18)) }, 'm v=1 1763424000000000000'],
  ['invalid Date: no timestamp', { measurement: 'm', fields: { v: 1 }, time: new Date(NaN) }, 'm v=1'],
  ['no timestamp', { measurement: 'm', fields: { v: 1 } }, 'm v=1'],
];

describe('formatPoint', () => {
  for (const [what, point, expected] of cases) {
    it(what, () => {
      assert.equal(formatPoint(point), expected === undefined ? undefined : `${expected}\n`);
    });
  }

  it('every line is one line', () => {
    for (const [, point] of cases) {
      const line = formatPoint(point);
      if (line !== undefined) assert.equal(line.indexOf('\n'), line.length - 1, line);
    }
  });
});
