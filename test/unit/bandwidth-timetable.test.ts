// BandwidthLimit values (issue 20 point 1): rates, timetables, the rate in force at an instant
// and the next boundary, in UTC and in zones with daylight saving time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Expected } from '../../src/errors.js';
import { isTimeZone, localWeekMinute, nextBoundary, parseRate, parseTimetable, rateAt } from '../../src/settings/timetable.js';

const K = 1024;
const M = 1024 * 1024;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function refused(text: string, re: RegExp): void {
  assert.throws(() => parseTimetable(text), (err: unknown) => err instanceof Expected && re.test(err.message), text);
}

describe('parseRate', () => {
  it('binary units, case-insensitive; plain bytes; off', () => {
    assert.equal(parseRate('512k'), 512 * K);
    assert.equal(parseRate('512K'), 512 * K);
    assert.equal(parseRate('2M'), 2 * M);
    assert.equal(parseRate('1G'), 1024 * M);
    assert.equal(parseRate('1.5M'), 1.5 * M);
    assert.equal(parseRate('1048576'), M);
    assert.equal(parseRate('off'), null);
    assert.equal(parseRate('OFF'), null);
  });

  it('refuses what is not a rate, and rates below 1k', () => {
    for (const bad of ['', 'fast', '1T', '-1k', '1 k', '0', '1000', '0.5k', 'k', '2MB']) assert.throws(() => parseRate(bad), Expected, bad);
  });
});

describe('parseTimetable', () => {
  it('a rate alone is one entry', () => {
    const t = parseTimetable('2M');
    assert.deepEqual(t.entries.map((e) => [e.weekMinute, e.rate]), [[0, 2 * M]]);
    assert.equal(t.text, '2M');
  });

  it('daily pairs stand for every day of the week, in week order', () => {
    const t = parseTimetable('18:00,off 08:00,512k');
    assert.equal(t.entries.length, 14);
    assert.deepEqual(t.entries.slice(0, 3).map((e) => [e.weekMinute, e.rate]), [[480, 512 * K], [1080, null], [1440 + 480, 512 * K]]);
  });

  it('weekday entries, mixed with daily ones', () => {
    const t = parseTimetable('Mon-08:00,1M sat-00:00,off 12:00,256k');
    assert.equal(t.entries.length, 2 + 7);
    assert.deepEqual(t.entries.filter((e) => e.token !== '12:00,256k').map((e) => [e.weekMinute, e.rate]), [[480, M], [5 * 1440, null]]);
  });

  it('errors name the bad token', () => {
    refused('08:00,512k 25:00,off', /`25:00,off` is not \[Mon-\]HH:MM,RATE/);
    refused('08:00,512k 18:61,off', /`18:61,off`/);
    refused('Mond-08:00,1M', /`Mond-08:00,1M`/);
    refused('Xyz-08:00,1M', /`Xyz-08:00,1M`/);
    refused('08:00,fast', /`08:00,fast` has the rate `fast`/);
    refused('08:00 18:00,off', /`08:00`/);
    refused('08:00,1M 8:00,2M', /one rate per time: `8:00,2M` and `08:00,1M` both start at mon 08:00/);
    refused('Tue-08:00,1M 08:00,2M', /`08:00,2M` and `Tue-08:00,1M` both start at tue 08:00/);
    refused('   ', /expected a rate/);
  });
});

describe('rateAt and nextBoundary', () => {
  const day = parseTimetable('08:00,512k 18:00,off');

  it('in force between boundaries; the evening entry goes on after midnight until the first of the day', () => {
    assert.equal(rateAt(day, at('2026-12-07T07:59:59Z'), 'UTC'), null);
    assert.equal(rateAt(day, at('2026-12-07T08:00:00Z'), 'UTC'), 512 * K);
    assert.equal(rateAt(day, at('2026-12-07T17:59:59Z'), 'UTC'), 512 * K);
    assert.equal(rateAt(day, at('2026-12-07T18:00:00Z'), 'UTC'), null);
    assert.equal(rateAt(day, at('2026-12-08T00:30:00Z'), 'UTC'), null, 'after midnight: still the 18:00 entry');
    // The reverse: a limit that runs through the night.
    const night = parseTimetable('08:00,off 18:00,256k');
    assert.equal(rateAt(night, at('2026-12-08T00:30:00Z'), 'UTC'), 256 * K, 'after midnight: the evening limit');
    assert.equal(rateAt(night, at('2026-12-08T07:59:00Z'), 'UTC'), 256 * K);
    assert.equal(iso(nextBoundary(night, at('2026-12-08T00:30:00Z'), 'UTC')), '2026-12-08T08:00:00.000Z');
  });

  it('the next boundary: later today, across midnight, exactly on one', () => {
    assert.equal(iso(nextBoundary(day, at('2026-12-07T07:59:30.250Z'), 'UTC')), '2026-12-07T08:00:00.000Z');
    assert.equal(iso(nextBoundary(day, at('2026-12-07T08:00:00Z'), 'UTC')), '2026-12-07T18:00:00.000Z');
    assert.equal(iso(nextBoundary(day, at('2026-12-07T20:00:00Z'), 'UTC')), '2026-12-08T08:00:00.000Z');
  });

  it('with weekdays, the last entry of the week goes on into Monday', () => {
    const week = parseTimetable('Mon-08:00,1M Fri-18:00,off');
    // 2026-12-07 is a Monday.
    assert.equal(rateAt(week, at('2026-12-07T07:00:00Z'), 'UTC'), null, 'Monday before 08:00: Friday\'s off');
    assert.equal(rateAt(week, at('2026-12-07T09:00:00Z'), 'UTC'), M);
    assert.equal(rateAt(week, at('2026-12-10T23:00:00Z'), 'UTC'), M, 'Thursday');
    assert.equal(rateAt(week, at('2026-12-13T12:00:00Z'), 'UTC'), null, 'Sunday');
    assert.equal(iso(nextBoundary(week, at('2026-12-13T12:00:00Z'), 'UTC')), '2026-12-14T08:00:00.000Z');
    assert.equal(iso(nextBoundary(week, at('2026-12-07T09:00:00Z'), 'UTC')), '2026-12-11T18:00:00.000Z');
    // A Sunday entry is the last of the week: it runs into Monday.
    const sunday = parseTimetable('Mon-06:00,1M Sun-20:00,256k');
    assert.equal(rateAt(sunday, at('2026-12-14T03:00:00Z'), 'UTC'), 256 * K);
  });

  it('one entry: its rate always, no boundary', () => {
    const one = parseTimetable('Wed-12:00,1M');
    assert.equal(rateAt(one, at('2026-12-07T00:00:00Z'), 'UTC'), M);
    assert.equal(rateAt(one, at('2026-12-10T00:00:00Z'), 'UTC'), M);
    assert.equal(nextBoundary(one, at('2026-12-07T00:00:00Z'), 'UTC'), null);
    assert.equal(nextBoundary(parseTimetable('2M'), at('2026-12-07T00:00:00Z'), 'UTC'), null);
  });

  it('local time in a zone, with the days of daylight saving time', () => {
    const zone = 'Europe/Berlin';
    // Winter: UTC+1.
    assert.equal(rateAt(day, at('2026-12-07T07:30:00Z'), zone), 512 * K, '08:30 in Berlin');
    assert.equal(iso(nextBoundary(day, at('2026-12-07T06:00:00Z'), zone)), '2026-12-07T07:00:00.000Z');
    // 2026-03-29: 02:00 becomes 03:00 (UTC+1 → UTC+2). From 01:00 local (00:00Z), 08:00 local is 06:00Z.
    assert.equal(iso(nextBoundary(day, at('2026-03-29T00:00:00Z'), zone)), '2026-03-29T06:00:00.000Z');
    // A boundary inside the skipped hour takes effect at its end.
    const gap = parseTimetable('02:30,1M 12:00,off');
    assert.equal(iso(nextBoundary(gap, at('2026-03-29T00:00:00Z'), zone)), '2026-03-29T01:00:00.000Z');
    assert.equal(rateAt(gap, at('2026-03-29T01:00:00Z'), zone), M, '03:00 local, right after the gap');
    assert.equal(rateAt(gap, at('2026-03-29T00:59:00Z'), zone), null, '01:59 local');
    // 2026-10-25: 03:00 becomes 02:00 (UTC+2 → UTC+1). From 01:00 local (23:00Z the day before), 08:00 local is 07:00Z.
    assert.equal(iso(nextBoundary(day, at('2026-10-24T23:00:00Z'), zone)), '2026-10-25T07:00:00.000Z');
    // New York: 2026-03-08 02:00 → 03:00 (UTC-5 → UTC-4); 18:00 local is 22:00Z.
    assert.equal(iso(nextBoundary(day, at('2026-03-08T13:00:00Z'), 'America/New_York')), '2026-03-08T22:00:00.000Z');
  });

  it('wall time through Intl; time zones validated', () => {
    assert.equal(localWeekMinute(at('2026-12-07T00:00:00Z'), 'UTC'), 0, 'Monday 00:00');
    assert.equal(localWeekMinute(at('2026-12-13T23:59:30Z'), 'UTC'), 10079.5);
    assert.equal(localWeekMinute(at('2026-12-07T00:00:00Z'), 'Asia/Kolkata'), 330, '05:30 in India');
    assert.equal(isTimeZone('Europe/Berlin'), true);
    assert.equal(isTimeZone('UTC'), true);
    assert.equal(isTimeZone('Mars/Olympus'), false);
    assert.equal(isTimeZone(''), false);
  });
});
