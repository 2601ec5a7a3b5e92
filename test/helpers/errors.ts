/** Assertions on error messages: the tests read as the messages users will see. */
import type { Test } from 'tap';

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Asserts that `fn` throws and that its message contains every fragment. */
export function throwsWith(t: Test, fn: () => unknown, fragments: string[], what = 'error message'): string {
  let message: string | null = null;
  try {
    fn();
  } catch (err) {
    message = messageOf(err);
  }
  return check(t, message, fragments, what);
}

/** Asserts that `promise` rejects and that its message contains every fragment. */
export async function rejectsWith(t: Test, promise: Promise<unknown>, fragments: string[], what = 'error message'): Promise<string> {
  let message: string | null = null;
  try {
    await promise;
  } catch (err) {
    message = messageOf(err);
  }
  return check(t, message, fragments, what);
}

/** Long fragments (temp paths) keep their informative tail in the assertion's name. */
function short(fragment: string): string {
  return fragment.length > 60 ? `...${fragment.slice(-45)}` : fragment;
}

function check(t: Test, message: string | null, fragments: string[], what: string): string {
  if (message === null) {
    t.fail(`${what}: expected an error, but none was thrown`);
    return '';
  }
  for (const f of fragments) t.ok(message.includes(f), `${what} mentions ${JSON.stringify(short(f))}`, { found: message });
  return message;
}
