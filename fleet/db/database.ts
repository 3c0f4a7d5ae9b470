// The one small SQL dialect layer: the fleet's SQL is written once with `?` placeholders and runs on
// SQLite (better-sqlite3, the embedded default: a file, no set-up) or PostgreSQL (pg, for a real
// deployment). What differs is here and nowhere else: placeholders, how a write transaction starts,
// row locks, and 64-bit integers (pg returns BIGINT as text unless told otherwise).
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** Starts a transaction that will write: SQLite takes the write lock at once, so no upgrade deadlock. */
  readonly beginWrite: string;
  /** Appended to a SELECT of rows about to be updated; SQLite locks the whole database instead. */
  readonly forUpdate: string;
}

export interface Sql {
  query<Row extends object>(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a statement and resolves with the number of rows it changed. */
  run(text: string, params?: readonly unknown[]): Promise<number>;
}

export interface Database extends Sql {
  readonly dialect: Dialect;
  /** Runs `work` in a write transaction; transactions of one Database never interleave. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  /** Runs a script of several statements (a migration). */
  exec(script: string): Promise<void>;
  close(): Promise<void>;
}

/** A promise chain: one transaction at a time per connection (better-sqlite3 has one connection). */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(work, work);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

// better-sqlite3 waits for a lock synchronously, so two connections of one process whose transactions
// interleave at an await would wait for each other for ever: in one process they take turns. Other
// processes are waited for (busy_timeout), and their transactions are short.
const sqliteTurns = new Serial();

class SqliteDatabase implements Database {
  readonly dialect: Dialect = { name: 'sqlite', beginWrite: 'BEGIN IMMEDIATE', forUpdate: '' };
  readonly #db: BetterSqlite3.Database;
  readonly #serial = sqliteTurns;
  readonly #statements = new Map<string, BetterSqlite3.Statement>();

  constructor(file: string) {
    this.#db = new BetterSqlite3(file);
    // WAL lets several fleet processes share one file (readers never block the writer); NORMAL
    // syncs at checkpoints, so a power cut may lose the last commits but never corrupts the file,
    // and whatever was not committed was not acknowledged to the broker either.
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 10000');
  }

  #statement(text: string): BetterSqlite3.Statement {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#db.prepare(text);
      if (this.#statements.size > 500) this.#statements.clear();
      this.#statements.set(text, statement);
    }
    return statement;
  }

  async query<Row extends object>(text: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.#statement(text).all(...params) as Row[];
  }

  async run(text: string, params: readonly unknown[] = []): Promise<number> {
    return this.#statement(text).run(...params).changes;
  }

  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return this.#serial.run(async () => {
      this.#db.exec(this.dialect.beginWrite);
      try {
        const result = await work(this);
        this.#db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    });
  }

  async exec(script: string): Promise<void> {
    this.#db.exec(script);
  }

  async close(): Promise<void> {
    if (this.#db.open) await this.#serial.run(async () => this.#db.close());
  }
}

/** `?` → `$1, $2, …` (the fleet's SQL has no `?` inside string literals). */
function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

const int8 = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === int8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

class PostgresDatabase implements Database {
  readonly dialect: Dialect = { name: 'postgres', beginWrite: 'BEGIN', forUpdate: ' FOR UPDATE' };
  readonly #pool: pg.Pool;
  readonly #serial = new Serial();
  #closed = false;

  constructor(url: string) {
    this.#pool = new pg.Pool({ connectionString: url, max: 4, types: pgTypes });
    // An idle client that loses its server must not crash the process; the next query reconnects.
    this.#pool.on('error', () => undefined);
  }

  async query<Row extends object>(text: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.#pool.query(numbered(text), params as unknown[])).rows as Row[];
  }

  async run(text: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.#pool.query(numbered(text), params as unknown[])).rowCount ?? 0;
  }

  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return this.#serial.run(async () => {
      const client = await this.#pool.connect();
      const tx: Sql = {
        query: async <Row extends object>(text: string, params: readonly unknown[] = []) =>
          (await client.query(numbered(text), params as unknown[])).rows as Row[],
        run: async (text, params = []) =>
          (await client.query(numbered(text), params as unknown[])).rowCount ?? 0,
      };
      try {
        await client.query(this.dialect.beginWrite);
        const result = await work(tx);
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release(true);
        throw error;
      }
    });
  }

  async exec(script: string): Promise<void> {
    await this.#pool.query(script);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#serial.run(() => this.#pool.end());
  }
}

/** `postgres://…` or `postgresql://…` opens PostgreSQL; anything else is a SQLite file (`:memory:` too). */
export function openDatabase(location: string): Database {
  return /^postgres(ql)?:\/\//.test(location) ? new PostgresDatabase(location) : new SqliteDatabase(location);
}
