// Plain SQL migrations (fleet/db/migrations/NNN_name.sql), applied in order, each once, each in its own
// transaction together with its row in schema_migrations. Several instances may start at once: the
// first to lock schema_migrations applies what is missing, the others then find nothing to do.
import { readdir, readFile } from 'node:fs/promises';
import type { Database } from './database.js';

const migrationsDir = new URL('./migrations/', import.meta.url);

export async function migrate(db: Database): Promise<string[]> {
  await db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)',
  );
  const files = (await readdir(migrationsDir)).filter((name) => /^\d+_[a-z0-9_]+\.sql$/.test(name)).sort();
  const applied: string[] = [];
  for (const file of files) {
    const version = file.replace(/\.sql$/, '');
    const script = await readFile(new URL(file, migrationsDir), 'utf8');
    const done = await db.transaction(async (tx) => {
      if (db.dialect.name === 'postgres') await tx.run('LOCK TABLE schema_migrations IN EXCLUSIVE MODE');
      const rows = await tx.query('SELECT version FROM schema_migrations WHERE version = ?', [version]);
      if (rows.length > 0) return false;
      for (const statement of splitStatements(script)) await tx.run(statement);
      await tx.run('INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)', [
        version,
        Date.now(),
      ]);
      return true;
    });
    if (done) applied.push(version);
  }
  return applied;
}

/** Statements of a migration: split on `;` at line ends, `--` comments dropped. */
export function splitStatements(script: string): string[] {
  return script
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(/;\s*$/m)
    .map((statement) => statement.trim())
    .filter((statement) => statement.length > 0);
}
