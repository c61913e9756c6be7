// compare.sh's table (bench-node/table.mjs): the rows and ratios it prints from the
// benchmark's JSON reports, and where it says each search ended and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot, withReports } from './helpers.mjs';

const table = path.join(repoRoot, 'js-client', 'bench-node', 'table.mjs');

const round = (deliveries, fields = {}) => ({
  deliveries_per_s: deliveries, p99_ms: 12.5, lost: 0, refused: 0, duplicated: 0,
  reordered: 0, echoed: 0, disconnected: 0, generator_saturated: false, pass: true,
  attempt: 1, ...fields,
});

test('the table gives each row with its ratio and says where each search ended', () => {
  const reports = {
    'chatterbox-n100': { best: round(1141654), rounds: [round(1141654), round(1712000, { pass: false, disconnected: 3, refused: 40 })] },
    'node-n100': { best: round(100196), rounds: [round(100196), round(150000, { pass: false, p99_ms: 326.4, attempt: 2 })] },
    // Nothing passed at the first rate: the row says 0, not n/a.
    'chatterbox-n1000': { best: null, rounds: [round(10000, { pass: false, lost: 7 })] },
    'node-n1000': { best: round(67918), rounds: [round(67918), round(101000, { pass: false, generator_saturated: true })] },
    'chatterbox-p99': { rounds: [round(10000, { p99_ms: 17.474, server_cores: 0.1462 })] },
    'node-p99': { rounds: [round(10000, { p99_ms: 16.61, server_cores: 0.146 })] },
    'chatterbox-idle1000': { idle_rss_per_member_bytes: 49328, empty_rss_kib: 9640, burst: { rss_per_member_bytes: 52736 } },
    'node-idle1000': { idle_rss_per_member_bytes: 47058, empty_rss_kib: 55344, burst: { rss_per_member_bytes: 47775 } },
    'chatterbox-idle5000': { idle_rss_per_member_bytes: 66532, join_secs: 16.42 },
    'node-idle5000': { idle_rss_per_member_bytes: 20173, join_secs: 211.59 },
    // Three runs at 990/s: the median; Node's third run missing, so n/a.
    'chatterbox-p99n100-1': { rounds: [round(990, { p99_ms: 9.1 })] },
    'chatterbox-p99n100-2': { rounds: [round(990, { p99_ms: 2.25 })] },
    'chatterbox-p99n100-3': { rounds: [round(990, { p99_ms: 4.5 })] },
    'node-p99n100-1': { rounds: [round(990, { p99_ms: 3 })] },
    'node-p99n100-2': { rounds: [round(990, { p99_ms: 3.5 })] },
  };
  withReports(reports, (dir) => {
    const printed = execFileSync(process.execPath, [table, dir], { encoding: 'utf8' });
    assert.equal(printed, [
      '|  | chatterbox | Node (socket.io 4) | ratio |',
      '|---|---|---|---|',
      '| max deliveries/s, N=100 K=10 (p99 ≤ 100 ms, no loss) | 1,141,654 | 100,196 | 11.4× |',
      '| max deliveries/s, N=1000 K=10 | 0 | 67,918 | n/a |',
      '| max deliveries/s, N=2000 K=5 | n/a | n/a | n/a |',
      '| p99 ms at 10,000 deliveries/s, N=1000 | 17.47 | 16.61 | 1.0× |',
      '| p99 ms at 990 deliveries/s, N=100 (median of 3 runs) | 4.50 | n/a | n/a |',
      '| server CPU (cores) at 10,000 deliveries/s, N=1000 | 0.146 | 0.146 | 1.0× |',
      '| RSS per idle member, N=1000 (bytes) | 49,328 | 47,058 | 1.0× |',
      '| RSS per idle member, N=5000 (bytes) | 66,532 | 20,173 | 0.3× |',
      '| RSS per member after a burst of 100 lines of 1 KiB, N=1000 (bytes) | 52,736 | 47,775 | 0.9× |',
      '| RSS of the empty server (KiB) | 9,640 | 55,344 | 5.7× |',
      '| time for 5,000 members to join (s) | 16.42 | 211.59 | 12.9× |',
      '',
      'Where each search ended:',
      '- chatterbox n100: ended at 1,712,000 deliveries/s: 40 lines refused, 3 members cut off',
      '- node n100: ended at 150,000 deliveries/s, run twice: p99 326.4 ms',
      '- chatterbox n1000: ended at 10,000 deliveries/s: 7 lost',
      "- node n1000: ended at 101,000 deliveries/s: generator saturated (its limit, not the server's)",
      '',
    ].join('\n'));
  });
});
