/** Line charts as SVG, rendered headless with Vega-Lite (no browser, no canvas). */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export interface ChartOptions {
  logX?: boolean;
  /** Fixed axis ranges (a BLEU axis is 0..100 whatever the data); default: fitted to the data. */
  xDomain?: [number, number];
  yDomain?: [number, number];
}

export async function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[], options: ChartOptions = {}): Promise<string> {
  const values = series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 560,
    height: 320,
    data: { values },
    mark: { type: 'line', point: values.length < 200 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xLabel, scale: options.logX ? { type: 'log' } : { zero: false, domain: options.xDomain } },
      y: { field: 'y', type: 'quantitative', title: yLabel, scale: { zero: false, domain: options.yDomain } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
