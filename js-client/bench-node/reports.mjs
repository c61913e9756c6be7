// The comparison's JSON reports (compare.sh writes one per server and scenario, as
// `<server>-<scenario>.json`, from chatterbox-bench --json) and the figures that the
// table (table.mjs) and the chart (chart.mjs) both show, formatted alike.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The two servers compared, in the order of the table's columns and the chart's bars. */
export const servers = ['chatterbox', 'node'];

/** Reads `<server>-<scenario>.json` from `dir`; a missing or unreadable report is `{}` (n/a). */
export const loader = (dir) => (server, scenario) => {
  try {
    return JSON.parse(readFileSync(path.join(dir, `${server}-${scenario}.json`), 'utf8'));
  } catch {
    return {};
  }
};

/** A figure as the table prints it: `n/a` when absent, thousands separated. */
export const fmt = (value, digits = 0) => (value === undefined || value === null ? 'n/a'
  : Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** A search's highest passing rate; 0 when even the first rate failed, undefined without a report. */
export const best = (load, scenario) => (server) => {
  const result = load(server, scenario);
  return result.best ? result.best.deliveries_per_s : (result.rounds ? 0 : undefined);
};

/**
 * The median p99 of `runs` runs of one fixed-rate scenario (`<scenario>-1` … `-<runs>`);
 * undefined unless every run has its round.
 */
export const medianP99 = (load, scenario, runs) => (server) => {
  const p99s = [];
  for (let i = 1; i <= runs; i += 1) {
    const p99 = load(server, `${scenario}-${i}`).rounds?.[0]?.p99_ms;
    if (typeof p99 !== 'number') return undefined;
    p99s.push(p99);
  }
  p99s.sort((a, b) => a - b);
  return p99s[Math.floor(runs / 2)];
};

/** The idle scenario's resident memory per member, in bytes. */
export const idleRssPerMember = (load, scenario) => (server) => load(server, scenario).idle_rss_per_member_bytes;

/** What failed the round a search ended on (its last). */
export const endedOn = (round) => {
  const why = [];
  if (round.lost) why.push(`${fmt(round.lost)} lost`);
  if (round.duplicated || round.reordered || round.echoed) {
    why.push(`${fmt(round.duplicated)} duplicated, ${fmt(round.reordered)} reordered, ${fmt(round.echoed)} echoed`);
  }
  if (round.refused) why.push(`${fmt(round.refused)} lines refused`);
  if (round.disconnected) why.push(`${fmt(round.disconnected)} members cut off`);
  if (round.generator_saturated) why.push('generator saturated (its limit, not the server\'s)');
  if (round.p99_ms > 100) why.push(`p99 ${fmt(round.p99_ms, 1)} ms`);
  return why.join(', ');
};

/** Prints the table (a header, then rows, as Markdown) and where each search ended. */
export const printTable = (header, rows, notes) => {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  if (notes.length) console.log('\nWhere each search ended:');
  for (const note of notes) console.log(`- ${note}`);
};
