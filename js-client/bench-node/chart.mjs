// Draws the comparison as an SVG (docs/comparison.svg): deliveries/s and memory per idle
// member, chatterbox beside Node, from the same JSON reports the table is printed from
// (compare.sh runs it after table.mjs), with the figures formatted as the table does.
//
//   node js-client/bench-node/chart.mjs REPORTS_DIR OUT.svg [CAPTION]
import { writeFileSync } from 'node:fs';
import { best, fmt, idleRssPerMember, loader, servers } from './reports.mjs';

const [dir, out, caption = ''] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node chart.mjs REPORTS_DIR OUT.svg [CAPTION]');
  process.exit(2);
}
const load = loader(dir);

// Text goes into the SVG as character data or attribute values: escaped.
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const panels = [
  {
    title: 'max deliveries/s: higher is better',
    subtitle: 'the highest rate with p99 ≤ 100 ms and no line lost',
    groups: [
      ['N=100 K=10', best(load, 'n100')],
      ['N=1000 K=10', best(load, 'n1000')],
      ['N=2000 K=5', best(load, 'n2000')],
    ],
  },
  {
    title: 'memory per idle member (bytes): lower is better',
    subtitle: 'the server\'s RSS per connected member',
    groups: [
      ['N=1000', idleRssPerMember(load, 'idle1000')],
      ['N=5000', idleRssPerMember(load, 'idle5000')],
    ],
  },
];
const colours = { chatterbox: '#d9480f', node: '#5c7080' };
const names = { chatterbox: 'chatterbox', node: 'Node (socket.io 4)' };

const width = 860;
const panelWidth = 400;
const plotTop = 84;
const plotHeight = 220;
const barWidth = 54;
const svg = [];
// Coordinates with at most two decimals.
const at = (v) => Number(v.toFixed(2));
const text = (x, y, content, attrs = '') => svg.push(
  `<text x="${at(x)}" y="${at(y)}"${attrs ? ` ${attrs}` : ''}>${escape(content)}</text>`);

panels.forEach((panel, p) => {
  const left = 30 + p * (panelWidth + 30);
  const values = panel.groups.map(([, get]) => servers.map(get));
  const top = Math.max(1, ...values.flat().filter((v) => typeof v === 'number'));
  text(left, plotTop - 42, panel.title, 'class="panel" font-weight="bold"');
  text(left, plotTop - 24, panel.subtitle, 'font-size="12" fill="#555"');
  svg.push(`<line x1="${left}" y1="${plotTop + plotHeight}" x2="${left + panelWidth}" y2="${plotTop + plotHeight}" stroke="#999"/>`);
  const groupWidth = panelWidth / panel.groups.length;
  panel.groups.forEach(([label], g) => {
    const centre = left + groupWidth * (g + 0.5);
    servers.forEach((server, s) => {
      const value = values[g][s];
      const x = centre + (s - 1) * (barWidth + 6) + 3;
      const shown = fmt(value);
      if (typeof value === 'number') {
        const height = (value / top) * plotHeight;
        const y = plotTop + plotHeight - height;
        svg.push(`<rect class="bar" data-server="${server}" data-value="${value}" x="${at(x)}" y="${at(y)}" `
          + `width="${barWidth}" height="${at(height)}" fill="${colours[server]}"/>`);
        text(x + barWidth / 2, y - 5, shown, 'class="value" text-anchor="middle" font-size="11"');
      } else {
        text(x + barWidth / 2, plotTop + plotHeight - 5, shown, 'class="value" text-anchor="middle" font-size="11"');
      }
    });
    text(centre, plotTop + plotHeight + 18, label, 'text-anchor="middle"');
  });
});

const legendY = plotTop + plotHeight + 50;
servers.forEach((server, s) => {
  const x = 30 + s * 200;
  svg.push(`<rect x="${x}" y="${legendY - 11}" width="14" height="14" fill="${colours[server]}"/>`);
  text(x + 20, legendY, names[server]);
});
if (caption) text(30, legendY + 26, caption, 'class="caption" font-size="12" fill="#555"');

const height = legendY + 40;
writeFileSync(out, `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" `
  + `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">\n`
  + `<rect width="100%" height="100%" fill="#fff"/>\n${svg.join('\n')}\n</svg>\n`);
