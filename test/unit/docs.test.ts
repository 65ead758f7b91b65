import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readmeBegin, readmeEnd, renderExampleIni, renderReadmeTable, updateReadme } from '../../scripts/settings-docs.js';
import { parseSettings, settingsTable } from '../../src/settings/load.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (name: string) => fs.readFileSync(path.join(root, name), 'utf8');
const stale = (name: string) => `${name} differs from what the option table (src/settings/table.ts) generates: run \`npm run docs\``;

describe('docs generated from the option table', () => {
  it("the README's settings table is the generated one", () => {
    const readme = read('README.md');
    assert.equal(readme.split(readmeBegin).length, 2, 'one begin marker');
    assert.equal(readme.split(readmeEnd).length, 2, 'one end marker');
    assert.equal(readme.slice(readme.indexOf(readmeBegin), readme.indexOf(readmeEnd) + readmeEnd.length), renderReadmeTable(), stale('README.md'));
  });

  it('settings.example.ini is the generated one', () => {
    assert.equal(read('settings.example.ini'), renderExampleIni(), stale('settings.example.ini'));
  });

  it('the README table has a row per key, the example file a line per key', () => {
    const table = renderReadmeTable();
    const example = renderExampleIni();
    for (const o of settingsTable) {
      assert.match(table, new RegExp(`^\\| (\`\\[${o.section}[^\`]*\\]\` )?\\| \`${o.key}\` \\|`, 'm'), o.key);
      // A key of several sections (BandwidthLimit, TimeZone) has a line in each.
      const sections = settingsTable.filter((other) => other.key === o.key).length;
      assert.equal(example.match(new RegExp(`^#?${o.key} = `, 'gm'))?.length, sections, o.key);
    }
  });

  it('the example file keeps its comment lines within 95 characters and loads', () => {
    const example = renderExampleIni();
    for (const line of example.split('\n')) assert.ok(line.length <= 95 || !line.startsWith('# '), line);
    assert.deepEqual(parseSettings(example, '/etc/cm/settings.ini').warnings, []);
  });

  it('replaces only what is between the markers', () => {
    const readme = `intro\n${readmeBegin}\nold table\n${readmeEnd}\noutro\n`;
    assert.equal(updateReadme(readme), `intro\n${renderReadmeTable()}\noutro\n`);
    assert.throws(() => updateReadme('no markers'), /expected the lines/);
  });
});
