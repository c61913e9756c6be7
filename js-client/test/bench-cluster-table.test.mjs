// compare-cluster.sh's table (bench-node/table-cluster.mjs): the rows and ratios it prints
// from the benchmark's JSON reports of the two clusters, the rows of each Redis
// persistence setting, the p99 target's parts, one order, and where each search ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot, withReports } from './helpers.mjs';

const table = path.join(repoRoot, 'js-client', 'bench-node', 'table-cluster.mjs');

const round = (deliveries, fields = {}) => ({
  deliveries_per_s: deliveries, p99_ms: 12.5, lost: 0, refused: 0, duplicated: 0,
  reordered: 0, echoed: 0, disconnected: 0, generator_saturated: false, pass: true,
  attempt: 1, receivers_checked: 999, receivers_out_of_order: 0, lines_out_of_order: 0, ...fields,
});
// After the joins: Redis, and each node's memory before the members came and after.
const joined = (redis, empty, rss) => ({
  redis, node1: { empty_rss_kib: empty, rss_kib: rss }, node2: { empty_rss_kib: empty, rss_kib: rss }, node3: { empty_rss_kib: empty, rss_kib: rss },
});
const watched = (redisCores, nodeCores) => ({
  redis: { cores: redisCores, rss_kib: 9000 },
  node1: { cores: nodeCores }, node2: { cores: nodeCores }, node3: { cores: nodeCores },
});

test('the cluster table gives each row with its ratio, each persistence setting and where each search ended', () => {
  const reports = {
    'chatterbox-n1000': { best: round(341000), rounds: [round(341000), round(512000, { pass: false, p99_ms: 140.2, attempt: 2 })] },
    'chatterbox-everysec-n1000': { best: round(227000), rounds: [round(227000), round(341000, { pass: false, lost: 12 })] },
    // Nothing passed at the first rate: 0, not n/a.
    'chatterbox-always-n1000': { best: null, rounds: [round(20000, { pass: false, p99_ms: 300, attempt: 2 })] },
    'node-n1000': {
      best: round(30000, { receivers_out_of_order: 660, lines_out_of_order: 12345 }),
      rounds: [round(30000), round(45000, { pass: false, lost: 5000, lines_out_of_order: 7, receivers_out_of_order: 2 })],
    },
    'chatterbox-lines': { members: 20, best: round(190000), rounds: [round(190000), round(285000, { pass: false, refused: 40 })] },
    'chatterbox-everysec-lines': { members: 20, best: round(95000), rounds: [round(95000)] },
    'node-lines': { members: 20, best: round(38000), rounds: [round(38000), round(57000, { pass: false, generator_saturated: true })] },
    'chatterbox-p99': { rounds: [round(10000, { p99_ms: 20.5, cross_node_p99_ms: 21, watched: watched(0.05, 0.06) })] },
    'chatterbox-everysec-p99': { rounds: [round(10000, { p99_ms: 22, cross_node_p99_ms: 22.5, watched: watched(0.06, 0.06) })] },
    'chatterbox-always-p99': { rounds: [round(10000, { p99_ms: 30, cross_node_p99_ms: 31, watched: watched(0.1, 0.06) })] },
    'node-p99': { rounds: [round(10000, { p99_ms: 25, cross_node_p99_ms: 42, receivers_out_of_order: 999, lines_out_of_order: 4000, watched: watched(0.02, 0.1) })] },
    'chatterbox-idle5000': {
      members: 5000, join_secs: 30.5,
      watched: joined({ rss_kib: 12000, cpu_secs: 8.25 }, 10000, 110000),
    },
    'node-idle5000': {
      members: 5000, join_secs: 300,
      watched: joined({ rss_kib: 9000, cpu_secs: 20 }, 50000, 90000),
    },
    'single-p99': { rounds: [round(10000, { p99_ms: 17.25 })] },
    'redis-rtt': { p50_ms: 0.031, p99_ms: 0.055 },
  };
  withReports(reports, (dir) => {
    const printed = execFileSync(process.execPath, [table, dir], { encoding: 'utf8' });
    assert.equal(printed, [
      '|  | chatterbox, 3 nodes | Node (socket.io 4 + redis-adapter), 3 processes | ratio |',
      '|---|---|---|---|',
      '| max deliveries/s, N=1000 K=10 over 3 nodes (p99 ≤ 100 ms, no loss) | 341,000 | 30,000 | 11.4× |',
      '|   the same, Redis with AOF, appendfsync everysec | 227,000 | 30,000 | 7.6× |',
      '|   the same, Redis with AOF, appendfsync always | 0 | 30,000 | n/a |',
      '| max lines/s through the cluster, N=20 K=20 (each line to 19 members) | 10,000 | 2,000 | 5.0× |',
      '|   the same, Redis with AOF, appendfsync everysec | 5,000 | 2,000 | 2.5× |',
      '|   the same, Redis with AOF, appendfsync always | n/a | 2,000 | n/a |',
      '| p99 ms at 10,000 deliveries/s, N=1000 over 3 nodes | 20.50 | 25.00 | 1.2× |',
      '|   the same, Redis with AOF, appendfsync everysec | 22.00 | 25.00 | 1.1× |',
      '|   the same, Redis with AOF, appendfsync always | 30.00 | 25.00 | 0.8× |',
      '| p99 ms of the lines from another node, at 10,000 deliveries/s | 21.00 | 42.00 | 2.0× |',
      '|   the same, Redis with AOF, appendfsync everysec | 22.50 | 42.00 | 1.9× |',
      '|   the same, Redis with AOF, appendfsync always | 31.00 | 42.00 | 1.4× |',
      "|   target for the cross-node p99: one chatterbox's p99 (17.25) + one Redis round trip (p99 0.055) | 17.31 | n/a | n/a |",
      '| receivers out of one order, at 10,000 deliveries/s | none of 999 | 999 of 999 (4,000 lines) | n/a |',
      '| receivers out of one order, best round of N=1000 | none of 999 | 660 of 999 (12,345 lines) | n/a |',
      '| Redis CPU (cores) at 10,000 deliveries/s | 0.050 | 0.020 | 0.4× |',
      '|   the same, Redis with AOF, appendfsync everysec | 0.060 | 0.020 | 0.3× |',
      '|   the same, Redis with AOF, appendfsync always | 0.100 | 0.020 | 0.2× |',
      "| the 3 nodes' CPU (cores, together) at 10,000 deliveries/s | 0.180 | 0.300 | 1.7× |",
      '| RSS per idle member, N=5000 over 3 nodes (bytes, each node over its own members) | 61,440 | 24,576 | 0.4× |',
      '| Redis RSS with 5,000 members (KiB) | 12,000 | 9,000 | 0.8× |',
      '| time for 5,000 members to join (s) | 30.50 | 300.00 | 9.8× |',
      '| Redis CPU over the 5,000 joins (s) | 8.25 | 20.00 | 2.4× |',
      '',
      'Where each search ended:',
      '- chatterbox n1000: ended at 512,000 deliveries/s, run twice: p99 140.2 ms',
      '- chatterbox-everysec n1000: ended at 341,000 deliveries/s: 12 lost',
      '- chatterbox-always n1000: ended at 20,000 deliveries/s, run twice: p99 300.0 ms',
      '- node n1000: ended at 45,000 deliveries/s: 5,000 lost; 2 of 999 (7 lines) receivers out of one order',
      '- chatterbox lines: ended at 285,000 deliveries/s: 40 lines refused',
      '- chatterbox-everysec lines: every rate passed, up to 95,000 deliveries/s',
      "- node lines: ended at 57,000 deliveries/s: generator saturated (its limit, not the server's)",
      '',
    ].join('\n'));
  });
});
