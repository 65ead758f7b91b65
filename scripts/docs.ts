/**
 * `npm run docs`: rewrites the README's settings table and settings.example.ini from the option
 * table (src/settings/table.ts). test/unit/docs.test.ts fails until the committed ones match.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderExampleIni, updateReadme } from './settings-docs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function write(name: string, render: (old: string) => string): void {
  const file = join(root, name);
  const old = readFileSync(file, 'utf8');
  const text = render(old);
  if (text === old) {
    console.log(`${name}: up to date`);
  } else {
    writeFileSync(file, text);
    console.log(`${name}: rewritten`);
  }
}

write('README.md', updateReadme);
write('settings.example.ini', renderExampleIni);
