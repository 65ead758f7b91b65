import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { carried, quote } from '../../src/ssh/quote.js';
import { assertNoMarker, marker, markerName, removeScratch, root } from '../helpers/sh-scripts.js';

after(removeScratch);

// Strings that would do something if a shell saw them unquoted.
const hostile: string[] = [
  '',
  ' ',
  'two words',
  '  leading and trailing  ',
  "it's",
  "'",
  "''",
  "'\\''",
  '"double"',
  `mixed '"' "'" quotes`,
  `$(touch ${markerName})`,
  '$(touch MARKER_ABS)', // replaced below by the absolute marker path
  `\`touch ${markerName}\``,
  `; touch ${markerName}`,
  `&& touch ${markerName}`,
  `| touch ${markerName}`,
  `a\ntouch ${markerName}\nb`,
  '\n',
  'tab\there',
  '-n',
  '-e x',
  '--',
  '-',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  '\\',
  'back\\slash\\n',
  '$HOME ${HOME} $1 $@ $? $$',
  '%s %d %%',
  '> out.txt',
  '< /etc/passwd',
  '#comment',
  '!',
  '{a,b}',
  '日本語 ünïcödé 😀',
  '\u00a0nbsp\u200bzwsp',
  `'; touch ${markerName}; echo '`,
  `"; touch ${markerName}; echo "`,
];

describe('quote', () => {
  before(() => {
    const i = hostile.indexOf('$(touch MARKER_ABS)');
    hostile[i] = `$(touch '${marker}')`;
  });

  it('wraps a plain word in single quotes', () => {
    assert.equal(quote('abc'), `'abc'`);
    assert.equal(quote(''), `''`);
    assert.equal(quote("a'b"), `'a'\\''b'`);
  });

  for (const [i, s] of hostile.entries()) {
    it(`makes hostile string #${i} ${JSON.stringify(s)} one inert word`, () => {
      const value = hostile[i]; // read at run time: one entry is rewritten in before()
      const out = execFileSync('/bin/sh', ['-c', `printf %s ${quote(value)}`], { cwd: root, encoding: 'utf8' });
      assert.equal(out, value);
      assertNoMarker();
    });
  }

  it('keeps every hostile string one word among others (argument count)', () => {
    const script = `set -- ${hostile.map(quote).join(' ')}; printf '%s\\n' "$#"`;
    const out = execFileSync('/bin/sh', ['-c', script], { cwd: root, encoding: 'utf8' });
    assert.equal(out, `${hostile.length}\n`);
    assertNoMarker();
  });

  it('concatenated quoted strings form one word with the literal concatenation', () => {
    const a = "it's";
    const b = '$(x)';
    const out = execFileSync('/bin/sh', ['-c', `printf %s ${quote(a)}${quote(b)}`], { cwd: root, encoding: 'utf8' });
    assert.equal(out, a + b);
  });
});

/**
 * The login shells sshd may run a command through (`SHELL -c COMMAND`), as Debian installs them
 * (.ci/run installs the packages). busybox is run as `busybox sh`, which is what a login shell
 * of /bin/busybox-linked ash amounts to.
 */
const loginShells: [string, string[]][] = [
  ['sh', ['/bin/sh']], ['dash', ['/bin/dash']], ['bash', ['/bin/bash']], ['zsh', ['/usr/bin/zsh']], ['ksh', ['/usr/bin/ksh']],
  ['busybox ash', ['/usr/bin/busybox', 'sh']], ['tcsh', ['/usr/bin/tcsh']], ['csh', ['/bin/csh']], ['fish', ['/usr/bin/fish']],
];

describe('carried: a script reaches sh unchanged whatever the login shell', () => {
  const hostile = `/tmp/x y/it's "q" \\back $HOME \`id\` !bang %s %% \n new line é ${markerName}$(touch ${markerName})`;
  const script = [
    `p=${quote(hostile)}`,
    `printf '%s|' "$p"`,
    'echo "LC_ALL=$LC_ALL"',
    // What follows the script on stdin is the script's own input.
    'while IFS= read -r line; do echo "read:$line"; done',
    'exit 7',
  ].join('\n');
  for (const [name, argv] of loginShells) {
    it(name, () => {
      const { command, prologue } = carried(script);
      const r = spawnSync(argv[0], [...argv.slice(1), '-c', command], { cwd: root, input: Buffer.concat([prologue, Buffer.from('one\ntwo \\ $x\n')]), encoding: 'utf8', timeout: 30_000 });
      if (r.error) throw r.error;
      assert.equal(r.stdout, `${hostile}|LC_ALL=C\nread:one\nread:two \\ $x\n`, r.stderr);
      assert.equal(r.status, 7, 'the script\'s exit code, not the login shell\'s');
      assertNoMarker();
    });
  }

  it('the line a login shell sees has no character any of them treats specially outside single quotes', () => {
    const { command } = carried(script);
    const outside = command.replace(/'[^']*'/g, '');
    assert.match(outside, /^exec \/bin\/sh -c $/);
    assert.doesNotMatch(command, /[!\\\n]/);
  });
});
