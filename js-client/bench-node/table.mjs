// Prints the comparison table from compare.sh's JSON results (one file per server and
// scenario in the directory given).
import { best as bestOf, endedOn, fmt, idleRssPerMember, loader, medianP99, printTable, servers } from './reports.mjs';

const load = loader(process.argv[2]);
const rows = [];
const row = (label, get, digits, better) => {
  const [ours, node] = servers.map(get);
  let ratio = 'n/a';
  if (typeof ours === 'number' && typeof node === 'number' && ours > 0 && node > 0) {
    ratio = `${fmt(better === 'higher' ? ours / node : node / ours, 1)}×`;
  }
  rows.push([label, fmt(ours, digits), fmt(node, digits), ratio]);
};
// No passing round (even the first rate was too much) is 0.
const best = (scenario) => bestOf(load, scenario);

row('max deliveries/s, N=100 K=10 (p99 ≤ 100 ms, no loss)', best('n100'), 0, 'higher');
row('max deliveries/s, N=1000 K=10', best('n1000'), 0, 'higher');
row('max deliveries/s, N=2000 K=5', best('n2000'), 0, 'higher');
row('p99 ms at 10,000 deliveries/s, N=1000', (s) => load(s, 'p99').rounds?.[0]?.p99_ms, 2, 'lower');
row('p99 ms at 990 deliveries/s, N=100 (median of 3 runs)', medianP99(load, 'p99n100', 3), 2, 'lower');
row('server CPU (cores) at 10,000 deliveries/s, N=1000', (s) => load(s, 'p99').rounds?.[0]?.server_cores, 3, 'lower');
row('RSS per idle member, N=1000 (bytes)', idleRssPerMember(load, 'idle1000'), 0, 'lower');
row('RSS per idle member, N=5000 (bytes)', idleRssPerMember(load, 'idle5000'), 0, 'lower');
row('RSS per member after a burst of 100 lines of 1 KiB, N=1000 (bytes)', (s) => load(s, 'idle1000').burst?.rss_per_member_bytes, 0, 'lower');
row('RSS of the empty server (KiB)', (s) => load(s, 'idle1000').empty_rss_kib, 0, 'lower');
row('time for 5,000 members to join (s)', (s) => load(s, 'idle5000').join_secs, 2, 'lower');

const notes = [];
for (const scenario of ['n100', 'n1000', 'n2000']) {
  for (const server of servers) {
    const rounds = load(server, scenario).rounds ?? [];
    const last = rounds[rounds.length - 1];
    if (!last) continue;
    const again = last.attempt > 1 ? ', run twice' : '';
    notes.push(last.pass
      ? `${server} ${scenario}: every rate passed, up to ${fmt(last.deliveries_per_s)} deliveries/s`
      : `${server} ${scenario}: ended at ${fmt(last.deliveries_per_s)} deliveries/s${again}: ${endedOn(last)}`);
  }
}

printTable(['', 'chatterbox', 'Node (socket.io 4)', 'ratio'], rows, notes);
