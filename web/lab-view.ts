/**
 * The demo page's storage lab: runs `runStorageLab` on the options in the form, shows progress,
 * then the report as `storvm bench` prints it and a bar chart (SVG, drawn here) of the rates of
 * each workload on each variant, with the report's JSON to download.
 */
import { formatTable, runStorageLab, toJson, type BenchReport } from '../src/browser/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** One horizontal bar per variant in each workload group, scaled per group (MB/s or ops/s). */
export function labChart(r: BenchReport): string {
  const groups = r.workloads.map((w) => ({ w, cells: r.results.filter((c) => c.workload === w.id && c.status === 'ok') })).filter((g) => g.cells.length > 0);
  const rowH = 12;
  const left = 92;
  const width = 320;
  let y = 4;
  const parts: string[] = [];
  for (const g of groups) {
    const max = Math.max(...g.cells.map((c) => c.rate!));
    parts.push(`<text x="0" y="${y + 10}" font-weight="bold">${esc(g.w.id)} (${g.w.unit === 'bytes' ? 'MB/s' : 'ops/s'})</text>`);
    y += 14;
    for (const c of g.cells) {
      const w = Math.max(1, ((width - left - 40) * c.rate!) / max);
      const label = c.rate! >= 100 ? c.rate!.toFixed(0) : c.rate!.toFixed(1);
      parts.push(
        `<g class="bar" data-variant="${esc(c.variant)}" data-workload="${esc(c.workload)}"><text x="0" y="${y + 9}">${esc(c.variant)}</text>` +
          `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 2}" fill="${c.variant.startsWith('9p') ? '#8fc1ff' : c.variant.startsWith('vfs') ? '#c59cf0' : c.variant.startsWith('blk') ? '#e8c07a' : '#8fd18f'}"/>` +
          `<text x="${(left + w + 3).toFixed(1)}" y="${y + 9}">${label}</text></g>`,
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
}

export function setupLab(showError: (m: string) => void): LabState {
  const state: LabState = { running: false, report: undefined, error: undefined };
  const status = $('lab-status');
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
        disk: $<HTMLInputElement>('lab-opfs-disk').checked ? 'opfs' : 'memory',
        share: $<HTMLInputElement>('lab-opfs-share').checked ? 'opfs' : 'memory',
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
        $('lab-chart').innerHTML = labChart(r);
        const pre = $('lab-table');
        pre.textContent = formatTable(r);
        pre.hidden = false;
        $('lab-json').hidden = false;
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
