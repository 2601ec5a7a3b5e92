/** Running the project's CLIs as a user would, in a child process. */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(script: string, args: string[]): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `src/cli/${script}.ts`, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Any entry point (a path from the repository root), without blocking, so that many can run at once. */
export function runEntryPoint(path: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      // execFile's error carries the exit code; a spawn failure (no code) reads as null.
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ status, stdout, stderr });
    });
  });
}
