// README.md and docs/*.md hold from a fresh clone: every link to a file of the
// repository leads to one (and its #anchor to a heading there), every repository path
// they name in code exists, and every --flag they name is one of chatterbox's (or, in a
// section about the load generator, chatterbox-bench's), as the built binaries' --help
// lists them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { binary, repoRoot } from './helpers.mjs';

const documents = ['README.md', ...readdirSync(path.join(repoRoot, 'docs'))
  .filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

// Flags of other programs that the documents name, and whose they are.
const otherPrograms = new Map([
  ['--release', 'cargo build/run'], ['--bins', 'cargo build'], ['--bin', 'cargo build'],
  ['--test', 'cargo test, node --test'], ['--all-targets', 'cargo clippy'], ['--check', 'cargo fmt'],
  ['--ignored', 'the Rust test harness (cargo test -- --ignored)'], ['--require', 'node (a preload)'],
  ['--call-graph', 'perf record'], ['--lib', 'cargo test'],
  ['--nocapture', 'the Rust test harness'], ['--test-threads', 'the Rust test harness'],
  ['--appendonly', 'redis-server'], ['--appendfsync', 'redis-server'],
  ['--now', 'systemctl enable'], ['--webroot', 'certbot'], ['--nginx', 'certbot'],
  ['--test-timeout', 'node --test'], ['--test-force-exit', 'node --test'],
]);

// Markdown without fenced code blocks and inline code (where links are not links).
const prose = (markdown) => markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');

// GitHub's anchors of a document's headings: lower case, punctuation dropped, spaces
// to hyphens, a repeated one numbered.
function anchors(markdown) {
  const seen = new Map();
  const found = new Set();
  for (const [, title] of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const slug = title.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    found.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return found;
}

// The problems with one document's links: targets that do not exist, anchors without
// their heading (`exists` and `read` look at the repository unless a test says).
const inRepository = {
  exists: (file) => existsSync(path.join(repoRoot, file)),
  read: (file) => readFileSync(path.join(repoRoot, file), 'utf8'),
};
function brokenLinks(file, markdown, { exists, read } = inRepository) {
  const broken = [];
  for (const [, target] of prose(markdown).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not a file here
    const [where, anchor] = target.split('#');
    const resolved = where ? path.normalize(path.join(path.dirname(file), decodeURI(where))) : file;
    if (resolved.startsWith('..') || !exists(resolved)) {
      broken.push(`${file}: ${target}: no file ${resolved}`);
    } else if (anchor !== undefined && !(resolved.endsWith('.md') && anchors(read(resolved)).has(anchor))) {
      broken.push(`${file}: ${target}: no heading #${anchor} in ${resolved}`);
    }
  }
  return broken;
}

// The flags a program's --help lists.
const flagsOf = (program) => new Set(execFileSync(program, ['--help'], { encoding: 'utf8' })
  .match(/--[a-z][a-z0-9-]*/g));

// Sections (a heading and what follows, up to the next) of a document.
const sections = (markdown) => markdown.split(/^(?=#{1,6} )/m);

test('every link in README and docs/ leads to a file of the repository and its heading', () => {
  const broken = documents.flatMap((file) => brokenLinks(file, readFileSync(path.join(repoRoot, file), 'utf8')));
  assert.deepEqual(broken, []);
});

test('the link check finds a missing file and a missing heading', () => {
  const files = { 'docs/x.md': '# Title\n\n## Some section, here\n', 'README.md': '# chatterbox\n' };
  const repository = { exists: (file) => file in files, read: (file) => files[file] };
  assert.deepEqual(brokenLinks('docs/x.md', [
    '[ok](../README.md) [ok](#some-section-here) [ok](https://example.com/nothing.md)',
    '[gone](missing.md) [no heading](#nowhere) `[code](not-a-link.md)`',
    '```\n[block](also-not-a-link.md)\n```',
  ].join('\n'), repository), [
    'docs/x.md: missing.md: no file docs/missing.md',
    'docs/x.md: #nowhere: no heading #nowhere in docs/x.md',
  ]);
});

/** Whether `named` is a path git ignores: something a test or a script writes. */
function generated(named) {
  return spawnSync('git', ['check-ignore', '-q', named], { cwd: repoRoot }).status === 0;
}

test('every path of the repository named in code in README and docs/ exists', () => {
  const missing = [];
  for (const file of documents) {
    const markdown = readFileSync(path.join(repoRoot, file), 'utf8');
    for (const [, named] of markdown.matchAll(/(?<![\w./-])((?:src|bench|js-client|tests|docs|static|deploy|\.ci)\/[\w./*-]*[\w/*])/g)) {
      if (!named.includes('*') && !existsSync(path.join(repoRoot, named)) && !generated(named)) {
        missing.push(`${file}: ${named}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

test('every flag named in README and docs/ is in chatterbox --help (or chatterbox-bench --help)', () => {
  const chatterbox = flagsOf(binary);
  const bench = flagsOf(path.join(path.dirname(binary), 'chatterbox-bench'));
  assert.ok(chatterbox.has('--max-connections-per-ip') && bench.has('--members'), 'both --help outputs read');
  const unknown = [];
  for (const file of documents) {
    for (const section of sections(readFileSync(path.join(repoRoot, file), 'utf8'))) {
      const aboutBench = section.includes('chatterbox-bench');
      for (const [flag] of section.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
        if (chatterbox.has(flag) || otherPrograms.has(flag) || (aboutBench && bench.has(flag))) continue;
        unknown.push(`${file}: ${flag} (${section.split('\n')[0]})`);
      }
    }
  }
  assert.deepEqual(unknown, []);
});

/** Every file under `dir` of the repository, as repository paths. */
function filesUnder(dir) {
  return readdirSync(path.join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const named = `${dir}/${entry.name}`;
    return entry.isDirectory() ? filesUnder(named) : [named];
  });
}

test('the table of files of docs/architecture.md names every file of src/ (or its folder)', () => {
  const architecture = readFileSync(path.join(repoRoot, 'docs', 'architecture.md'), 'utf8');
  const table = sections(architecture).find((section) => section.startsWith('## Files\n'));
  assert.ok(table, 'a section ## Files');
  const named = new Set([...table.matchAll(/`([^`\s]+)`/g)].map(([, code]) => code));
  const unnamed = filesUnder('src').filter((file) => {
    const folders = file.split('/').slice(0, -1).map((_, i, parts) => `${parts.slice(0, i + 1).join('/')}/`);
    return !named.has(file) && !folders.some((folder) => named.has(folder));
  });
  assert.deepEqual(unnamed, []);
});
