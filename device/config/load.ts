// Reading and validating the config file. Errors name the field and what is wrong.
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { Config } from './schema.js';

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/** Turns zod issues into lines like `gpio.button.pin: Too big: expected number to be <=63`. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `${field}: ${issue.message}`;
  });
}

export function parseConfig(raw: unknown): ConfigResult {
  const result = Config.safeParse(raw);
  return result.success
    ? { ok: true, config: result.data }
    : { ok: false, errors: describeIssues(result.error) };
}

export async function loadConfig(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return { ok: false, errors: [`${path}: cannot read the config file (${code})`] };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, errors: [`${path}: not valid JSON (${(error as Error).message})`] };
  }
  return parseConfig(raw);
}
