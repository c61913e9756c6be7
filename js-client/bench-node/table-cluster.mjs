// Prints the cluster comparison table from compare-cluster.sh's JSON results (one file
// per cluster and scenario in the directory given: `<cluster>-<scenario>.json`, cluster
// `chatterbox`, `chatterbox-everysec`, `chatterbox-always` or `node`; and
// `single-p99.json` and `redis-rtt.json`, the p99 target's parts).
import { best as bestOf, endedOn, fmt, loader, printTable } from './reports.mjs';

const load = loader(process.argv[2]);
const clusters = ['chatterbox', 'chatterbox-everysec', 'chatterbox-always', 'node'];
const persistence = { 'chatterbox-everysec': 'appendfsync everysec', 'chatterbox-always': 'appendfsync always' };

const rows = [];
// A row: our figure, Node's, and the ratio (how many times better ours is).
const row = (label, ours, node, digits, better) => {
  let ratio = 'n/a';
  if (typeof ours === 'number' && typeof node === 'number' && ours > 0 && node > 0) {
    ratio = `${fmt(better === 'higher' ? ours / node : node / ours, 1)}×`;
  }
  const show = (v) => (typeof v === 'string' ? v : fmt(v, digits));
  rows.push([label, show(ours), show(node), ratio]);
};
// A row for the cluster without persistence, then one for each AOF setting (beside the
// same Node figure: socket.io's adapter keeps nothing).
const rowsByPersistence = (label, get, digits, better) => {
  row(label, get('chatterbox'), get('node'), digits, better);
  for (const cluster of ['chatterbox-everysec', 'chatterbox-always']) {
    row(`  the same, Redis with AOF, ${persistence[cluster]}`, get(cluster), get('node'), digits, better);
  }
};
const best = (scenario) => bestOf(load, scenario);
const p99Round = (cluster) => load(cluster, 'p99').rounds?.[0];
// The search's best round's deliveries over the receivers of each line.
const linesPerSecond = (cluster) => {
  const report = load(cluster, 'lines');
  const deliveries = best('lines')(cluster);
  return deliveries === undefined ? undefined : deliveries / Math.max(1, report.members - 1);
};
const watchedNodes = (watched) => Object.entries(watched ?? {}).filter(([name]) => name.startsWith('node'));
const nodesCores = (round) => {
  const nodes = watchedNodes(round?.watched);
  if (!nodes.length || nodes.some(([, w]) => typeof w.cores !== 'number')) return undefined;
  return nodes.reduce((sum, [, w]) => sum + w.cores, 0);
};
// Each node's growth over the members on it (members / nodes), averaged over the nodes.
const rssPerMember = (report) => {
  const nodes = watchedNodes(report.watched);
  if (!nodes.length || !report.members) return undefined;
  const grown = nodes.reduce((sum, [, w]) => sum + Math.max(0, w.rss_kib - w.empty_rss_kib), 0);
  return (grown * 1024) / report.members;
};
// Receivers out of one order in a round: `none of 999` or `667 of 999 (12,345 lines)`.
const outOfOrder = (round) => {
  if (!round || round.receivers_checked === undefined) return undefined;
  const out = round.receivers_out_of_order;
  return `${out ? fmt(out) : 'none'} of ${fmt(round.receivers_checked)}${out ? ` (${fmt(round.lines_out_of_order)} lines)` : ''}`;
};

rowsByPersistence('max deliveries/s, N=1000 K=10 over 3 nodes (p99 ≤ 100 ms, no loss)', best('n1000'), 0, 'higher');
rowsByPersistence('max lines/s through the cluster, N=20 K=20 (each line to 19 members)', linesPerSecond, 0, 'higher');
rowsByPersistence('p99 ms at 10,000 deliveries/s, N=1000 over 3 nodes', (c) => p99Round(c)?.p99_ms, 2, 'lower');
rowsByPersistence('p99 ms of the lines from another node, at 10,000 deliveries/s', (c) => p99Round(c)?.cross_node_p99_ms, 2, 'lower');
const single = load('single', 'p99').rounds?.[0]?.p99_ms;
const rtt = load('redis', 'rtt').p99_ms;
row(`  target for the cross-node p99: one chatterbox's p99 (${fmt(single, 2)}) + one Redis round trip (p99 ${fmt(rtt, 3)})`,
  typeof single === 'number' && typeof rtt === 'number' ? single + rtt : undefined, undefined, 2);
row('receivers out of one order, at 10,000 deliveries/s', outOfOrder(p99Round('chatterbox')), outOfOrder(p99Round('node')));
row('receivers out of one order, best round of N=1000', outOfOrder(load('chatterbox', 'n1000').best), outOfOrder(load('node', 'n1000').best));
rowsByPersistence('Redis CPU (cores) at 10,000 deliveries/s', (c) => p99Round(c)?.watched?.redis?.cores, 3, 'lower');
row('the 3 nodes\' CPU (cores, together) at 10,000 deliveries/s', nodesCores(p99Round('chatterbox')), nodesCores(p99Round('node')), 3, 'lower');
row('RSS per idle member, N=5000 over 3 nodes (bytes, each node over its own members)', rssPerMember(load('chatterbox', 'idle5000')), rssPerMember(load('node', 'idle5000')), 0, 'lower');
row('Redis RSS with 5,000 members (KiB)', load('chatterbox', 'idle5000').watched?.redis?.rss_kib, load('node', 'idle5000').watched?.redis?.rss_kib, 0, 'lower');
row('time for 5,000 members to join (s)', load('chatterbox', 'idle5000').join_secs, load('node', 'idle5000').join_secs, 2, 'lower');
row('Redis CPU over the 5,000 joins (s)', load('chatterbox', 'idle5000').watched?.redis?.cpu_secs, load('node', 'idle5000').watched?.redis?.cpu_secs, 2, 'lower');

const notes = [];
for (const scenario of ['n1000', 'lines']) {
  for (const cluster of clusters) {
    const rounds = load(cluster, scenario).rounds ?? [];
    const last = rounds[rounds.length - 1];
    if (!last) continue;
    const again = last.attempt > 1 ? ', run twice' : '';
    const order = last.lines_out_of_order ? `; ${outOfOrder(last)} receivers out of one order` : '';
    notes.push(last.pass
      ? `${cluster} ${scenario}: every rate passed, up to ${fmt(last.deliveries_per_s)} deliveries/s${order}`
      : `${cluster} ${scenario}: ended at ${fmt(last.deliveries_per_s)} deliveries/s${again}: ${endedOn(last)}${order}`);
  }
}

printTable(['', 'chatterbox, 3 nodes', 'Node (socket.io 4 + redis-adapter), 3 processes', 'ratio'], rows, notes);
