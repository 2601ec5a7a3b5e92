/** A Markdown table of rows given as records: the first row's keys are the header. */
export function recordTable(rows: Record<string, string>[]): string {
  const keys = Object.keys(rows[0]);
  return [`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${Object.values(r).join(' | ')} |`)].join('\n');
}
