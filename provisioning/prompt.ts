// Questions to the technician over node:readline/promises. Lines are queued as they arrive, so answers
// piped in all at once (scripts, tests) are never lost between two questions. An invalid answer is
// answered with the validation error and the question is asked again; the default is shown in brackets.

import { createInterface, type Interface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export interface AskOptions<T> {
  /** Shown in brackets and used for an empty answer. */
  defaultAnswer?: string | undefined;
  parse(answer: string): Parsed<T> | Promise<Parsed<T>>;
}

export class InputClosedError extends Error {
  constructor() {
    super('input ended before every question was answered');
  }
}

export class Prompter {
  readonly #output: Writable;
  readonly #rl: Interface;
  readonly #lines: string[] = [];
  #waiting: ((line: string | undefined) => void) | undefined;
  #closed = false;

  constructor(input: Readable, output: Writable) {
    this.#output = output;
    this.#rl = createInterface({ input, output, terminal: false });
    this.#rl.on('line', (line) => {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting(line);
      else this.#lines.push(line);
    });
    this.#rl.on('close', () => {
      this.#closed = true;
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(undefined);
    });
  }

  #nextLine(): Promise<string | undefined> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  say(text: string): void {
    this.#output.write(`${text}\n`);
  }

  /** Asks until the answer parses. Throws `InputClosedError` if the input ends first. */
  async ask<T>(question: string, options: AskOptions<T>): Promise<T> {
    const suffix = options.defaultAnswer !== undefined ? ` [${options.defaultAnswer}]` : '';
    for (;;) {
      this.#output.write(`${question}${suffix}: `);
      const line = await this.#nextLine();
      if (line === undefined) {
        this.#output.write('\n');
        throw new InputClosedError();
      }
      const answer = line.trim() === '' ? (options.defaultAnswer ?? '') : line.trim();
      const parsed = await options.parse(answer);
      if (parsed.ok) return parsed.value;
      this.#output.write(`  ✗ ${parsed.error}\n`);
    }
  }

  /** A yes/no question; the default is used for an empty answer. */
  confirm(question: string, defaultYes: boolean): Promise<boolean> {
    return this.ask(question, {
      defaultAnswer: defaultYes ? 'y' : 'n',
      parse: (answer) => {
        if (/^(y|yes|j|ja)$/i.test(answer)) return { ok: true, value: true };
        if (/^(n|no|nej)$/i.test(answer)) return { ok: true, value: false };
        return { ok: false, error: 'answer y or n' };
      },
    });
  }

  close(): void {
    this.#rl.close();
  }
}
