/**
 * The status page (GET /status): one self-contained HTML document, no external script, font or
 * library. Its script polls status.json every second, keeps two minutes of history and draws it
 * as SVG lines. Everything it shows from the server (channel names, users) goes in as text, never
 * as markup. The Content-Security-Policy allows exactly this script and this style, by hash.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root{color-scheme:dark;--bg:#11151c;--card:#1a202a;--line:#2a3240;--text:#d8dee9;--dim:#8a94a6}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,sans-serif}
header{display:flex;gap:16px;align-items:baseline;padding:12px 20px;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
header span{color:var(--dim)}
#state.live{color:#5ad17a}#state.down{color:#ff6b6b}
main{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;padding:14px 20px}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-width:0}
section.wide{grid-column:span 3}
h2{font-size:13px;font-weight:600;color:var(--dim);margin:0 0 6px;text-transform:uppercase;letter-spacing:.04em}
.now{font-size:26px;font-weight:600}
.now small{font-size:13px;color:var(--dim);font-weight:400}
svg.chart{width:100%;height:90px;display:block}
polyline{fill:none;stroke:currentColor;stroke-width:1.5;vector-effect:non-scaling-stroke}
text.axis{fill:var(--dim);font-size:9px}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:12px;color:var(--dim)}
.legend b{color:var(--text);font-weight:600}
.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle;background:currentColor}
.c-ws,.c-deliveries{color:#4ea1ff}.c-sse,.c-messages,.c-ring{color:#5ad17a}.c-poll,.c-records{color:#f2b84b}.c-mqtt,.c-log{color:#c77dff}.c-reset{color:#ff6b6b}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--dim);font-weight:500;border-bottom:1px solid var(--line);padding:3px 6px}
td{padding:3px 6px;border-bottom:1px solid #222a36;overflow-wrap:anywhere}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:var(--dim);font-style:italic}
.bar{display:grid;grid-template-columns:minmax(80px,1fr) 2fr 70px;gap:8px;align-items:center;font-size:12px}
.bar svg{width:100%;height:8px}.bar rect{fill:#f2b84b}.bar b{text-align:right}
`;

// Plain ES5-style script: it sits in a template literal, so it has no backquote, no dollar-brace
// and no backslash.
const SCRIPT = `
(function () {
  'use strict';
  var KEEP = 120, SVG = 'http://www.w3.org/2000/svg', TRANSPORTS = ['ws', 'sse', 'poll', 'mqtt'];
  var token = new URLSearchParams(location.search).get('token');
  var series = {}, lastTime = 0;
  function byId(id) { return document.getElementById(id); }
  function el(tag, attrs, text, svg) {
    var e = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(n) {
    var a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return a >= 100 || n === Math.round(n) ? String(Math.round(n)) : n.toFixed(1);
  }
  function bytes(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KB' : Math.round(n) + ' B'; }
  function ago(ms) { var s = Math.round(ms / 1000); return s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h'; }
  function record(name, value) {
    var values = series[name] || (series[name] = []);
    values.push(value);
    if (values.length > KEEP) values.shift();
  }
  // One line per series, all scaled to the largest value in view; the legend shows the latest.
  function chart(id, names, format) {
    var card = byId(id), svg = card.querySelector('svg'), legend = card.querySelector('.legend'), max = 0;
    names.forEach(function (n) { series[id + n].forEach(function (v) { if (v > max) max = v; }); });
    svg.replaceChildren(el('text', { x: 2, y: 9, class: 'axis' }, format(max), true));
    legend.replaceChildren();
    names.forEach(function (n) {
      var values = series[id + n], offset = KEEP - values.length;
      var points = values.map(function (v, i) { return ((offset + i) * 300 / (KEEP - 1)).toFixed(1) + ',' + (88 - (max > 0 ? v / max : 0) * 74).toFixed(1); });
      svg.appendChild(el('polyline', { points: points.join(' '), class: 'c-' + n }, undefined, true));
      var key = el('span', { class: 'c-' + n });
      key.append(el('i', {}), n + ' ', el('b', {}, format(values[values.length - 1])));
      legend.appendChild(key);
    });
  }
  function plot(id, values, format) {
    var names = Object.keys(values);
    names.forEach(function (n) { record(id + n, values[n]); });
    chart(id, names, format);
  }
  // The current value, large; data-value holds it unformatted.
  function big(id, value, shown, unit) {
    var now = byId(id).querySelector('.now');
    now.dataset.value = String(value);
    now.replaceChildren(shown, el('small', {}, ' ' + unit));
  }
  // Table rows; a cell is aligned as its column's header is (numbers to the right).
  function rows(id, items, empty, cells) {
    var body = byId(id).querySelector('tbody'), heads = byId(id).querySelectorAll('th');
    body.replaceChildren();
    if (items.length === 0) {
      var tr = el('tr', {});
      tr.appendChild(el('td', { colspan: 9, class: 'empty' }, empty));
      body.appendChild(tr);
    }
    items.forEach(function (item) {
      var tr = el('tr', {});
      cells(item).forEach(function (cell, i) { tr.appendChild(el('td', { class: heads[i].className }, String(cell))); });
      body.appendChild(tr);
    });
  }
  function lag(source) {
    var box = byId('lag').querySelector('.bars');
    box.replaceChildren();
    if (source.lag === null) { box.appendChild(el('p', { class: 'empty' }, 'Embedded log: messages are delivered as they are published, there is no lag.')); return; }
    var max = 1;
    source.lag.forEach(function (p) { if (p.records > max) max = p.records; });
    source.lag.forEach(function (p) {
      var row = el('div', { class: 'bar' }), bar = el('svg', { viewBox: '0 0 100 8', preserveAspectRatio: 'none' }, undefined, true);
      bar.appendChild(el('rect', { width: Math.max(0, p.records) / max * 100, height: 8 }, undefined, true));
      row.append(el('span', {}, p.topic + '/' + p.partition), bar, el('b', {}, p.records < 0 ? 'n/a' : num(p.records)));
      box.appendChild(row);
    });
    if (source.reachable === false) box.appendChild(el('p', { class: 'empty' }, 'Kafka is not reachable: lag is as last seen.'));
  }
  function show(s) {
    if (s.time === lastTime) return;
    lastTime = s.time;
    byId('source').textContent = s.source.kind === 'kafka' ? 'Kafka source' : 'embedded log';
    byId('updated').textContent = 'updated ' + new Date(s.time).toLocaleTimeString();
    var written = 0;
    TRANSPORTS.forEach(function (t) { written += s.rates.writtenBytes[t]; });
    big('deliveries', s.rates.deliveries, num(s.rates.deliveries), 'deliveries/s');
    big('ingest', s.rates.messages, num(s.rates.messages), 'messages/s');
    big('bytes', written, bytes(written), '/s');
    plot('connections', s.connections, num);
    plot('deliveries', { deliveries: s.rates.deliveries }, num);
    plot('ingest', { messages: s.rates.messages, records: s.rates.records }, num);
    plot('bytes', s.rates.writtenBytes, bytes);
    plot('resumes', s.rates.resumes, num);
    lag(s.source);
    rows('channels', s.busiestChannels, 'No messages in the last interval.', function (c) { return [c.channel, Number(c.rate.toFixed(1)), c.subscribers]; });
    rows('consumers', s.slowestConsumers, 'Every outbox is empty: all clients keep up.', function (c) {
      return [c.transport, c.session, c.user === null ? '-' : c.user, bytes(c.bufferedBytes), c.channels, ago(s.time - c.connectedAt)];
    });
  }
  function state(text, live) { var e = byId('state'); e.textContent = text; e.className = live ? 'live' : 'down'; }
  function poll() {
    fetch('status.json', { cache: 'no-store', headers: token ? { authorization: 'Bearer ' + token } : {} })
      .then(function (response) {
        if (response.status === 401) throw new Error('not authorized: open /status?token=<metrics token or API key>');
        if (!response.ok) throw new Error('status.json answered ' + response.status);
        return response.json();
      })
      .then(function (s) { show(s); state('live', true); }, function (error) { state(error.message, false); })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
`;

const BODY = `
<header><h1>edgepush status</h1><span id="source"></span><span id="updated"></span><span id="state">connecting</span></header>
<main>
<section id="connections"><h2>Connections</h2><svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></section>
<section id="deliveries"><h2>Deliveries</h2><div class="now" data-value="0">-</div><svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></section>
<section id="ingest"><h2>Ingest</h2><div class="now" data-value="0">-</div><svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></section>
<section id="bytes"><h2>Bytes out by transport</h2><div class="now" data-value="0">-</div><svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></section>
<section id="resumes"><h2>Resumes per second by outcome</h2><svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></section>
<section id="lag"><h2>Kafka lag per partition (records)</h2><div class="bars"></div></section>
<section id="channels" class="wide"><h2>Busiest channels</h2><table><thead><tr><th>channel</th><th class="n">messages/s</th><th class="n">subscribers</th></tr></thead><tbody></tbody></table></section>
<section id="consumers" class="wide"><h2>Slowest consumers (fullest outboxes)</h2><table><thead><tr><th>transport</th><th>session</th><th>user</th><th class="n">buffered</th><th class="n">channels</th><th class="n">connected</th></tr></thead><tbody></tbody></table></section>
</main>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgepush status</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>
`;

/** Nothing but this page's own script and style, and requests to its own origin. */
export const STATUS_PAGE_CSP = `default-src 'none'; script-src ${sha256(SCRIPT)}; style-src ${sha256(STYLE)}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
