/** Line charts as SVG, rendered headless with Vega-Lite (no browser, no canvas). */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export async function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[], options: { logX?: boolean } = {}): Promise<string> {
  const values = series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 560,
    height: 320,
    data: { values },
    mark: { type: 'line', point: values.length < 200 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xLabel, scale: options.logX ? { type: 'log' } : { zero: false } },
      y: { field: 'y', type: 'quantitative', title: yLabel, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
