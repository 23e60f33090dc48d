// Drives a POP with the real @libsql/client and prints what happened as JSON.
// Usage: node driver.mjs SCENARIO URL TOKEN [ARG]
// Each scenario returns plain data; the Python tests assert on it.
import { createHash } from "node:crypto";
import { createClient } from "@libsql/client";
import * as hrana from "@libsql/hrana-client";

const [scenario, url, authToken, arg] = process.argv.slice(2);
const client = createClient({ url, authToken, intMode: "bigint" });

const plainRows = (rs) => rs.rows.map((row) => Array.from(row));
const errorOf = (e) => ({ code: e.code ?? null, rawCode: e.rawCode ?? null, message: String(e.message) });

const scenarios = {
  async values() {
    await client.execute("DELETE FROM vals");
    const blob = new Uint8Array([0, 1, 0, 255, 0]);
    const inserted = await client.execute({
      sql: "INSERT INTO vals (i, f, t, b, n) VALUES (?, ?, ?, ?, ?)",
      args: [9223372036854775807n, 3.25, "héllo wörld ✓ 日本", blob, null],
    });
    await client.execute({
      sql: "INSERT INTO vals (i, f, t, b, n) VALUES (:i, :f, :t, :b, :n)",
      args: { i: -9223372036854775808n, f: -0.5, t: "", b: new Uint8Array([]), n: null },
    });
    const rs = await client.execute("SELECT i, f, t, b, n, typeof(b) FROM vals ORDER BY rowid");
    return {
      rowsAffected: inserted.rowsAffected,
      lastInsertRowid: inserted.lastInsertRowid,
      columns: rs.columns,
      columnTypes: rs.columnTypes,
      rows: rs.rows.map((r) => [String(r[0]), r[1], r[2], Array.from(new Uint8Array(r[3])), r[4], r[5]]),
    };
  },
  // ARG: the prefix of the keys it writes.
  async batchModes() {
    const p = arg;
    const out = {};
    out.write = (await client.batch([
      { sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${p}-bw1`, "1"] },
      { sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${p}-bw2`, "2"] },
    ], "write")).map((rs) => rs.rowsAffected);
    out.read = (await client.batch([
      `SELECT count(*) FROM kv WHERE k LIKE '${p}-bw%'`,
      `SELECT v FROM kv WHERE k = '${p}-bw2'`,
    ], "read")).map(plainRows);
    out.deferredRead = (await client.batch([`SELECT v FROM kv WHERE k = '${p}-bw1'`], "deferred")).map(plainRows);
    out.deferredWrite = (await client.batch([
      { sql: "UPDATE kv SET v = ? WHERE k = ?", args: ["22", `${p}-bw2`] },
      `SELECT v FROM kv WHERE k = '${p}-bw2'`,
    ], "deferred")).map((rs) => ({ affected: rs.rowsAffected, rows: plainRows(rs) }));
    try {
      await client.batch([
        { sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${p}-bw3`, "3"] },
        { sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${p}-bw1`, "dup"] },
      ], "write");
      out.atomicFailure = "no error";
    } catch (e) {
      out.atomicFailure = errorOf(e);
    }
    out.afterFailure = plainRows(await client.execute(`SELECT count(*) FROM kv WHERE k = '${p}-bw3'`));
    return out;
  },
  async readTransaction() {
    const tx = await client.transaction("read");
    const first = plainRows(await tx.execute("SELECT count(*) FROM kv"));
    const second = plainRows(await tx.execute("SELECT v FROM kv WHERE k = 'rt'"));
    let writeError = null;
    try {
      await tx.execute("INSERT INTO kv (k, v) VALUES ('rt-write', 'x')");
    } catch (e) {
      writeError = errorOf(e);
    }
    await tx.commit();
    return { first, second, writeError };
  },
  async writeTransaction() {
    const tx = await client.transaction("write");
    await tx.execute({ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${arg}-a`, "1"] });
    const inside = plainRows(await tx.execute({ sql: "SELECT count(*) FROM kv WHERE k LIKE ?", args: [`${arg}-%`] }));
    await tx.execute({ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${arg}-b`, "2"] });
    await tx.commit();
    const after = plainRows(await client.execute({ sql: "SELECT k FROM kv WHERE k LIKE ? ORDER BY k", args: [`${arg}-%`] }));
    return { inside, after };
  },
  // ARG "prefix:N": N write transactions of three calls each; every third rolled back.
  async transactionLoop() {
    const [prefix, n] = arg.split(":");
    const committed = [];
    const seenInside = [];
    for (let i = 0; i < Number(n); i++) {
      const tx = await client.transaction("write");
      await tx.execute({ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${prefix}-${i}`, String(i)] });
      seenInside.push(String((await tx.execute({ sql: "SELECT count(*) FROM kv WHERE k = ?", args: [`${prefix}-${i}`] })).rows[0][0]));
      if (i % 3 === 2) {
        await tx.rollback();
      } else {
        await tx.commit();
        committed.push(`${prefix}-${i}`);
      }
    }
    const after = plainRows(await client.execute({ sql: "SELECT k FROM kv WHERE k LIKE ? ORDER BY k", args: [`${prefix}-%`] }));
    return { committed, seenInside, after: after.map((row) => row[0]) };
  },
  async writeTransactionRollback() {
    const tx = await client.transaction("write");
    await tx.execute({ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [`${arg}-rb`, "1"] });
    await tx.rollback();
    return plainRows(await client.execute({ sql: "SELECT count(*) FROM kv WHERE k = ?", args: [`${arg}-rb`] }));
  },
  async constraint() {
    await client.execute({ sql: "INSERT OR IGNORE INTO kv (k, v) VALUES ('dup', 'x')" });
    const out = {};
    try {
      await client.execute({ sql: "INSERT INTO kv (k, v) VALUES ('dup', 'y')" });
      out.primaryKey = "no error";
    } catch (e) {
      out.primaryKey = errorOf(e);
    }
    try {
      await client.execute({ sql: "INSERT INTO kv (k, v) VALUES ('nn', NULL)" });
      out.notNull = "no error";
    } catch (e) {
      out.notNull = errorOf(e);
    }
    try {
      await client.execute("INSERT INTO items (name, qty) VALUES ('neg', -1)");
      out.check = "no error";
    } catch (e) {
      out.check = errorOf(e);
    }
    try {
      await client.execute("SELEC nonsense");
      out.syntax = "no error";
    } catch (e) {
      out.syntax = errorOf(e);
    }
    return out;
  },
  async readYourWrites() {
    const n = Number(arg);
    const misses = [];
    for (let i = 0; i < n; i++) {
      const key = `ryw-${process.pid}-${i}`;
      await client.execute({ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", args: [key, String(i)] });
      const rs = await client.execute({ sql: "SELECT v FROM kv WHERE k = ?", args: [key] });
      if (rs.rows.length !== 1 || rs.rows[0][0] !== String(i)) misses.push(i);
    }
    return { iterations: n, misses };
  },
  // @libsql/client's own executeMultiple() tests, on a table of this scenario's own.
  async executeMultiple() {
    const t = `em_${arg}`;
    const sum = async () => String((await client.execute(`SELECT SUM(a) FROM ${t}`)).rows[0][0]);
    const failed = async (sql) => {
      try {
        await client.executeMultiple(sql);
        return "no error";
      } catch (e) {
        return errorOf(e);
      }
    };
    const out = {};
    await client.execute(`CREATE TABLE IF NOT EXISTS ${t} (a)`);
    await client.execute(`INSERT INTO ${t} VALUES (100)`);
    await client.executeMultiple(`DROP TABLE IF EXISTS ${t}; CREATE TABLE ${t} (a); INSERT INTO ${t} VALUES (1), (2), (4), (8);`);
    out.multiple = await sum();
    out.errorStops = await failed(`DROP TABLE IF EXISTS ${t}; CREATE TABLE ${t} (a); INSERT INTO ${t} VALUES (1), (2), (4); INSERT INTO ${t} VALUES (foo()); INSERT INTO ${t} VALUES (8), (16);`);
    out.afterErrorStops = await sum();
    await client.executeMultiple(`DROP TABLE IF EXISTS ${t}; CREATE TABLE ${t} (a); BEGIN; INSERT INTO ${t} VALUES (1), (2), (4); INSERT INTO ${t} VALUES (8), (16); COMMIT;`);
    out.manualTransaction = await sum();
    out.errorRollsBack = await failed(`DROP TABLE IF EXISTS ${t}; CREATE TABLE ${t} (a); INSERT INTO ${t} VALUES (0); BEGIN; INSERT INTO ${t} VALUES (1), (2), (4); INSERT INTO ${t} VALUES (foo()); INSERT INTO ${t} VALUES (8), (16); COMMIT;`);
    out.afterRollback = await sum();
    return out;
  },
  // DDL with constraints, then constraint errors inside batch(..., "write").
  async constraintDdl() {
    const t = `cd_${arg}`;
    const out = {};
    await client.execute(`CREATE TABLE IF NOT EXISTS ${t} (id INTEGER PRIMARY KEY, a UNIQUE)`);
    await client.execute(`CREATE TABLE IF NOT EXISTS ${t} (id INTEGER PRIMARY KEY, a UNIQUE)`);
    await client.execute(`INSERT INTO ${t} (id, a) VALUES (1, 'x')`);
    for (const [name, sql] of [["primaryKey", `INSERT INTO ${t} (id, a) VALUES (1, 'y')`], ["unique", `INSERT INTO ${t} (id, a) VALUES (2, 'x')`]]) {
      try {
        await client.batch([`INSERT INTO ${t} (id, a) VALUES (10, 'ten')`, sql], "write");
        out[name] = "no error";
      } catch (e) {
        out[name] = errorOf(e);
      }
    }
    out.count = String((await client.execute(`SELECT count(*) FROM ${t}`)).rows[0][0]);
    return out;
  },
  // The shared client scenario (tests/clients/scenario.py says what and in which form);
  // ARG: the table.
  async shared() {
    const t = arg;
    const canon = (v) => {
      if (v === null || typeof v === "string") return v;
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "number") return String(v);
      if (v instanceof ArrayBuffer) return `x'${Buffer.from(v).toString("hex")}'`;
      throw new Error(`unexpected value ${v}`);
    };
    const select = async (q, sql) => (await q.execute(sql)).rows.map((row) => Array.from(row).map(canon));
    const count = `SELECT count(*) FROM ${t}`;
    const out = {};
    await client.execute(`DROP TABLE IF EXISTS ${t}`);
    await client.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)`);
    await client.execute(`INSERT INTO ${t} VALUES (1, 9223372036854775807, 3.25, 'héllo ✓ 日本', x'0001ff'), (2, -9223372036854775808, -0.5, '', x''), (3, NULL, NULL, NULL, NULL)`);
    const insert = `INSERT INTO ${t} (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)`;
    await client.execute({ sql: insert, args: [4, 42, 0.125, "param ✓", new Uint8Array([0, 255])] });
    await client.execute({ sql: insert, args: [5, null, null, null, null] });
    out.rows = await select(client, `SELECT id, i, f, s, b, typeof(b) FROM ${t} ORDER BY id`);
    // The client's batch: several statements in one call.
    await client.batch([`INSERT INTO ${t} (id, s) VALUES (6, 'six')`, `INSERT INTO ${t} (id, s) VALUES (7, 'seven')`], "write");
    out.afterBatch = (await select(client, count))[0][0];
    try {
      await client.execute(`INSERT INTO ${t} (id) VALUES (1)`);
      out.constraint = "no error";
      out.constraintMessage = null;
    } catch (e) {
      out.constraint = e.code === "SQLITE_CONSTRAINT" ? "SQLITE_CONSTRAINT" : `${e.code}: ${e.message}`;
      out.constraintMessage = e.message;
    }
    for (const [name, id, commit] of [["txCommit", 8, true], ["txRollback", 9, false]]) {
      const tx = await client.transaction("write");
      await tx.execute(`INSERT INTO ${t} (id, s) VALUES (${id}, 'in a transaction')`);
      const inside = (await select(tx, count))[0][0];
      await (commit ? tx.commit() : tx.rollback());
      out[name] = { inside, after: (await select(client, count))[0][0] };
    }
    const big = await select(client, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) SELECT x, x * x, 'row ' || x FROM c");
    const digest = createHash("sha256");
    for (const row of big) digest.update(JSON.stringify(row) + "\n");
    out.big = { count: big.length, last: big[big.length - 1], sha256: digest.digest("hex") };
    return out;
  },
  async executeRead() {
    return plainRows(await client.execute(arg));
  },
  // hrana-client (the Hrana library inside @libsql/client) asked for protocol 3 over
  // HTTP, which @libsql/client 0.18 never asks for: it probes GET /v3-protobuf and then
  // speaks Hrana's protobuf encoding, to /v3-protobuf/pipeline and /v3-protobuf/cursor.
  async protobuf() {
    const raw = hrana.openHttp(url, authToken, undefined, undefined, 3);
    raw.intMode = "bigint";
    try {
      const version = await raw.getVersion();
      const stream = raw.openStream();
      const out = { version };
      const row = await stream.queryRow([
        "SELECT ?, ?, ?, ?, ?",
        [9223372036854775807n, -0.5, "žluťoučký kůň", new Uint8Array([0, 255]), null],
      ]);
      out.values = Array.from(row.row).map((v) => (v instanceof ArrayBuffer ? Array.from(new Uint8Array(v)) : v));
      const described = await stream.describe("SELECT k AS key, ?, :n FROM kv");
      out.described = { params: described.paramNames, cols: described.columns, readonly: described.isReadonly };
      // Over a cursor, hrana-client 0.10.0 fails on the replication_index entry that
      // sqld (0.24.33) ends every cursor with; recorded, then the batch runs without.
      const viaCursor = stream.batch(true);
      viaCursor.step().queryValue("SELECT 1");
      out.cursorBatch = await viaCursor.execute().then(() => "ok", errorOf);
      const batch = stream.batch(false);
      const listed = batch.step().query("SELECT k, v FROM kv ORDER BY k LIMIT 5");
      const failingStep = batch.step();
      const failing = failingStep.query("SELECT * FROM no_such_table").catch(errorOf);
      const skipped = batch.step().condition(hrana.BatchCond.ok(failingStep)).queryValue("SELECT 1");
      const ran = batch.step().condition(hrana.BatchCond.error(failingStep)).queryValue("SELECT 2");
      await batch.execute();
      out.batch = {
        listed: (await listed).rows.map((r) => Array.from(r)),
        failing: await failing,
        skipped: (await skipped) ?? "skipped",
        ran: (await ran).value,
      };
      await stream.run("BEGIN");
      await stream.run(["INSERT INTO kv (k, v) VALUES (?, 'x')", ["pb-client-rolled-back"]]);
      out.inTransaction = !(await stream.getAutocommit());
      await stream.run("ROLLBACK");
      out.afterRollback = (await stream.queryValue("SELECT count(*) FROM kv WHERE k = 'pb-client-rolled-back'")).value;
      stream.close();
      return out;
    } finally {
      raw.close();
    }
  },
};

try {
  const result = await scenarios[scenario]();
  process.stdout.write(JSON.stringify({ ok: true, result }, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: errorOf(e), stack: String(e.stack) }));
} finally {
  client.close();
}
