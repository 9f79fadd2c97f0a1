/**
 * The demo page's storage lab: runs `runStorageLab` on the options in the form, shows progress,
 * then the report as `storvm bench` prints it and a bar chart (SVG, drawn here) of the rates of
 * each workload on each variant, with the report's JSON to download. Beside the page's figures it
 * shows Node's: a `storvm bench --json` report, the committed one (bench/lab-node.json) or one the
 * visitor gives by URL or file, read with `parseBenchReport` (a bad file is one clear message).
 * The blk-http column's image is the page's own lab image (web/lab-image.ts).
 */
import { BenchReportError, formatComparison, formatTable, parseBenchReport, runStorageLab, toJson, type BenchReport, type LabSide } from '../src/browser/index.js';
import committedNode from '../bench/lab-node.json?url';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const COLOURS: Array<[string, string]> = [
  ['9p', '#8fc1ff'],
  ['vfs', '#c59cf0'],
  ['blk', '#e8c07a'],
];
const colour = (variant: string) => COLOURS.find(([p]) => variant.startsWith(p))?.[1] ?? '#8fd18f';

/**
 * One horizontal bar per variant and report in each workload group, scaled per group (MB/s or
 * ops/s). The second report's bars are drawn lighter and labelled with its name.
 */
export function labChart(sides: readonly LabSide[]): string {
  const ws: Array<{ id: string; unit: string }> = [];
  for (const s of sides) for (const w of s.report.workloads) if (!ws.some((x) => x.id === w.id)) ws.push(w);
  const vs: string[] = [];
  for (const s of sides) for (const v of s.report.variants) if (!vs.includes(v.id)) vs.push(v.id);
  const rowH = 12;
  const left = 118;
  const width = 360;
  let y = 4;
  const parts: string[] = [];
  for (const w of ws) {
    const bars = vs.flatMap((v) =>
      sides.flatMap((s, i) => {
        const c = s.report.results.find((x) => x.workload === w.id && x.variant === v && x.status === 'ok');
        return c === undefined ? [] : [{ v, side: s.label, first: i === 0, rate: c.rate! }];
      }),
    );
    if (bars.length === 0) continue;
    const max = Math.max(...bars.map((b) => b.rate)) || 1;
    parts.push(`<text x="0" y="${y + 10}" font-weight="bold">${esc(w.id)} (${w.unit === 'bytes' ? 'MB/s' : 'ops/s'})</text>`);
    y += 14;
    for (const b of bars) {
      const len = Math.max(1, ((width - left - 40) * b.rate) / max);
      const label = b.rate >= 100 ? b.rate.toFixed(0) : b.rate.toFixed(1);
      const name = sides.length > 1 ? `${b.v} · ${b.side}` : b.v;
      parts.push(
        `<g class="bar" data-variant="${esc(b.v)}" data-workload="${esc(w.id)}" data-side="${esc(b.side)}"><text x="0" y="${y + 9}">${esc(name)}</text>` +
          `<rect x="${left}" y="${y}" width="${len.toFixed(1)}" height="${rowH - 2}" fill="${colour(b.v)}"${b.first ? '' : ' fill-opacity="0.45" stroke="#666" stroke-width="0.5"'}/>` +
          `<text x="${(left + len + 3).toFixed(1)}" y="${y + 9}">${label}</text></g>`,
      );
      y += rowH;
    }
    y += 6;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${y}" role="img" aria-label="storage lab rates">${parts.join('')}</svg>`;
}

export interface LabState {
  running: boolean;
  report: BenchReport | undefined;
  error: string | undefined;
  /** The Node report shown beside the page's, and where it came from. */
  node: BenchReport | undefined;
  nodeFrom: string | undefined;
  nodeError: string | undefined;
}

export function setupLab(showError: (m: string) => void): LabState {
  const state: LabState = { running: false, report: undefined, error: undefined, node: undefined, nodeFrom: undefined, nodeError: undefined };
  const status = $('lab-status');
  const nodeStatus = $('lab-node-status');

  const sides = (): LabSide[] => [...(state.report ? [{ label: 'page', report: state.report }] : []), ...(state.node ? [{ label: 'node', report: state.node }] : [])];
  const render = (): void => {
    const s = sides();
    $('lab-chart').innerHTML = s.length > 0 ? labChart(s) : '';
    const pre = $('lab-table');
    pre.textContent = state.report && !state.node ? formatTable(state.report) : s.length > 0 ? formatComparison(s) : '';
    pre.hidden = s.length === 0;
    $('lab-json').hidden = state.report === undefined;
  };

  /** Reads a Node report; a bad one leaves the one shown before and says what is wrong. */
  const loadNode = async (what: string, text: () => Promise<string>): Promise<void> => {
    nodeStatus.textContent = `reading ${what}…`;
    try {
      state.node = parseBenchReport(await text(), what);
      state.nodeFrom = what;
      state.nodeError = undefined;
      nodeStatus.textContent = `Node figures: ${what} (storvm ${state.node.storvm || '?'}, ${state.node.date.slice(0, 10) || 'undated'})`;
    } catch (e) {
      const msg = e instanceof BenchReportError ? e.message : `${what}: ${(e as Error).message}`;
      state.nodeError = msg;
      nodeStatus.textContent = msg;
      showError(`the lab's Node figures: ${msg}`);
    }
    render();
  };
  const fetchText = (url: string) => async () => {
    let r: Response;
    try {
      r = await fetch(url);
    } catch (e) {
      throw new Error(`could not fetch it (${(e as Error).message})`);
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.text();
  };
  const loadNodeUrl = (url: string) => loadNode(url === committedNode ? 'bench/lab-node.json' : url, fetchText(url));

  $<HTMLFormElement>('lab-node-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const url = $<HTMLInputElement>('lab-node-url').value.trim();
    void loadNodeUrl(url === '' ? committedNode : url);
  });
  $<HTMLInputElement>('lab-node-file').addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void loadNode(f.name, () => f.text());
  });
  // `?labnode=URL` names the Node report; otherwise the committed one is shown.
  void loadNodeUrl(new URLSearchParams(location.search).get('labnode') ?? committedNode);

  $<HTMLFormElement>('lab-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.running) return;
    const variants = $<HTMLInputElement>('lab-variants').value.split(/[\s,]+/).filter(Boolean);
    state.running = true;
    state.report = undefined;
    state.error = undefined;
    $<HTMLButtonElement>('lab-run').disabled = true;
    status.textContent = 'starting the lab guest…';
    let run: ReturnType<typeof runStorageLab>;
    try {
      run = runStorageLab({
        sizeMiB: Number($<HTMLInputElement>('lab-size').value),
        files: Number($<HTMLInputElement>('lab-files').value),
        ...(variants.length > 0 ? { variants } : {}),
        share: $<HTMLInputElement>('lab-opfs-share').checked ? 'opfs' : 'memory',
        httpImage: new URL('lab-image/manifest.json', document.baseURI),
        onStep: (step, i, n) => (status.textContent = `[${i}/${n}] ${step}`),
      });
    } catch (err) {
      state.running = false;
      $<HTMLButtonElement>('lab-run').disabled = false;
      state.error = (err as Error).message;
      showError(`the lab: ${state.error}`);
      return;
    }
    run.then(
      (r) => {
        state.report = r;
        status.textContent = `done in ${r.hostSeconds.toFixed(0)} s${r.errors.length > 0 ? ` with ${r.errors.length} error(s)` : ''}`;
        render();
      },
      (err: Error) => {
        state.error = err.message;
        status.textContent = 'failed';
        showError(`the lab: ${err.message}`);
      },
    ).finally(() => {
      state.running = false;
      $<HTMLButtonElement>('lab-run').disabled = false;
    });
  });
  $('lab-json').addEventListener('click', () => {
    if (!state.report) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([toJson(state.report)], { type: 'application/json' }));
    a.download = 'storvm-lab.json';
    a.click();
  });
  return state;
}
