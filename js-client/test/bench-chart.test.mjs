// compare.sh's chart (bench-node/chart.mjs): drawn from the same JSON reports as the
// table, its figures are the table's and its bars are in proportion; the chart in docs/
// is the script's drawing of run 21, whose figures are README's table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot, withReports } from './helpers.mjs';

const bench = path.join(repoRoot, 'js-client', 'bench-node');
// The rows the chart draws, as table.mjs labels them.
const charted = ['max deliveries/s, N=100 K=10 (p99 ≤ 100 ms, no loss)', 'max deliveries/s, N=1000 K=10',
  'max deliveries/s, N=2000 K=5', 'RSS per idle member, N=1000 (bytes)', 'RSS per idle member, N=5000 (bytes)'];
const unescape = (text) => text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
  .replace(/&#39;/g, "'").replace(/&amp;/g, '&');

// `| label | chatterbox | node | …` rows of Markdown tables, by label (the first table's,
// when several have one).
function tableRows(markdown) {
  const rows = new Map();
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((cell) => cell.trim());
    if (cells.length >= 3 && !rows.has(cells[0])) rows.set(cells[0], cells.slice(1, 3));
  }
  return rows;
}
// The figures shown over the bars, in order, and the bars' values and heights.
const values = (svg) => [...svg.matchAll(/<text [^>]*class="value"[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]));
const bars = (svg) => [...svg.matchAll(/<rect class="bar" data-server="([a-z]+)" data-value="([0-9.]+)"[^>]* height="([0-9.]+)"/g)]
  .map((m) => ({ server: m[1], value: Number(m[2]), height: Number(m[3]) }));
const chartedFigures = (markdown) => {
  const rows = tableRows(markdown);
  return charted.flatMap((label) => {
    assert.ok(rows.has(label), `row ${label}`);
    return rows.get(label);
  });
};

test('the chart shows the table\'s figures, chatterbox beside Node, bars in proportion', () => {
  const reports = {
    'chatterbox-n100': { best: { deliveries_per_s: 1712334 }, rounds: [] },
    'node-n100': { best: { deliveries_per_s: 100219 }, rounds: [] },
    'chatterbox-n1000': { best: { deliveries_per_s: 67928 }, rounds: [] },
    'node-n1000': { best: { deliveries_per_s: 67576 }, rounds: [] },
    // No report from Node at N=2000: n/a in the table, no bar in the chart.
    'chatterbox-n2000': { best: { deliveries_per_s: 512385 }, rounds: [] },
    'chatterbox-idle1000': { idle_rss_per_member_bytes: 45123 },
    'node-idle1000': { idle_rss_per_member_bytes: 47001 },
    'chatterbox-idle5000': { idle_rss_per_member_bytes: 65990 },
    'node-idle5000': { idle_rss_per_member_bytes: 19876 },
  };
  withReports(reports, (dir) => {
    const table = execFileSync(process.execPath, [path.join(bench, 'table.mjs'), dir], { encoding: 'utf8' });
    const out = path.join(dir, 'chart.svg');
    execFileSync(process.execPath, [path.join(bench, 'chart.mjs'), dir, out, 'run <a> & "b"']);
    const svg = readFileSync(out, 'utf8');

    assert.deepEqual(values(svg), chartedFigures(table));
    assert.deepEqual(values(svg), ['1,712,334', '100,219', '67,928', '67,576', '512,385', 'n/a',
      '45,123', '47,001', '65,990', '19,876']);
    const drawn = bars(svg);
    assert.deepEqual(drawn.map((bar) => `${bar.server} ${bar.value}`), ['chatterbox 1712334', 'node 100219',
      'chatterbox 67928', 'node 67576', 'chatterbox 512385', 'chatterbox 45123', 'node 47001',
      'chatterbox 65990', 'node 19876']);
    // Each panel's tallest bar is the plot's height; the others in proportion.
    for (const panel of [drawn.slice(0, 5), drawn.slice(5)]) {
      const top = Math.max(...panel.map((bar) => bar.value));
      const full = panel.find((bar) => bar.value === top).height;
      for (const bar of panel) assert.ok(Math.abs(bar.height - (bar.value / top) * full) < 0.01, `${bar.value}`);
    }
    assert.ok(svg.includes('>run &lt;a&gt; &amp; &quot;b&quot;</text>'), 'the caption, escaped');
  });
});

test('docs/comparison.svg is the chart of run 21, whose figures are README\'s table', () => {
  const run21 = path.join(bench, 'reports-run21');
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-chart-'));
  try {
    const out = path.join(dir, 'chart.svg');
    // The command docs/performance.md gives for it.
    execFileSync(process.execPath, [path.join(bench, 'chart.mjs'), run21, out,
      'Run 21 of js-client/bench-node/compare.sh, 2026-12-07, ROUND_SECS=3, 2 cores (AMD EPYC), quiet: the table in README']);
    const committed = readFileSync(path.join(repoRoot, 'docs', 'comparison.svg'), 'utf8');
    assert.equal(committed, readFileSync(out, 'utf8'));
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    assert.deepEqual(values(committed), chartedFigures(readme));
    const table = execFileSync(process.execPath, [path.join(bench, 'table.mjs'), run21], { encoding: 'utf8' });
    const ours = tableRows(table);
    for (const [label, figures] of tableRows(readme)) {
      if (ours.has(label)) assert.deepEqual(figures, ours.get(label), label);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('README\'s cluster table is run 6 of compare-cluster.sh, as table-cluster.mjs prints it', () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('### Three nodes on one Redis');
  assert.ok(start > 0, 'the section');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  const run6 = path.join(bench, 'reports-cluster-run6');
  const table = execFileSync(process.execPath, [path.join(bench, 'table-cluster.mjs'), run6], { encoding: 'utf8' });
  const ours = tableRows(table);
  const shown = [...tableRows(section)].filter(([label]) => label !== '');
  assert.ok(shown.length >= 10, `${shown.length} rows`);
  for (const [label, figures] of shown) {
    assert.ok(ours.has(label), `row ${label}`);
    assert.deepEqual(figures, ours.get(label), label);
  }
});
