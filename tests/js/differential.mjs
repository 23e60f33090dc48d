// The differential suite's real client: runs units with @libsql/client, one JSON line in,
// one JSON line out, so that one Node process serves a whole test run.
// In:  {"url", "token", "mode", "stmts": [{"sql", "args"}], "commit"}
// Out: {"outcomes": [...]} where an outcome is {"rows", "columns", "affected", "lastRowid"},
//      {"error": code} or {"skipped": true}.
// Values travel typed: {"integer": "123"}, {"float": 1.5}, {"text": "x"}, {"blob": base64}, null.
import { createClient } from "@libsql/client";
import { createInterface } from "node:readline";

const clients = new Map();
const clientFor = (url, authToken) => {
  const key = `${url} ${authToken}`;
  if (!clients.has(key)) clients.set(key, createClient({ url, authToken, intMode: "bigint" }));
  return clients.get(key);
};

const fromWire = (v) => {
  if (v === null) return null;
  if ("integer" in v) return BigInt(v.integer);
  if ("float" in v) return v.float;
  if ("text" in v) return v.text;
  return new Uint8Array(Buffer.from(v.blob, "base64"));
};
const toWire = (v) => {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return { integer: v.toString() };
  if (typeof v === "number") return { float: v };
  if (typeof v === "string") return { text: v };
  return { blob: Buffer.from(new Uint8Array(v)).toString("base64") };
};
const stmtOf = (s) => ({ sql: s.sql, args: s.args.map(fromWire) });
const rowsOf = (rs) => ({
  columns: rs.columns,
  rows: rs.rows.map((row) => Array.from(row).map(toWire)),
  affected: rs.rowsAffected,
  lastRowid: rs.lastInsertRowid === undefined ? null : rs.lastInsertRowid.toString(),
});
const errorOf = (e) => {
  if (e?.code === undefined) throw e; // not an error the client reports: a driver bug
  return { error: e.code, message: String(e.message) };
};
const attempt = async (work) => {
  try {
    return await work();
  } catch (e) {
    return errorOf(e);
  }
};

const modes = {
  async client_execute(client, unit) {
    const out = [];
    for (const s of unit.stmts) out.push(await attempt(async () => rowsOf(await client.execute(stmtOf(s)))));
    return out;
  },
  async client_batch(client, unit) {
    const done = await attempt(async () => (await client.batch(unit.stmts.map(stmtOf), "write")).map(rowsOf));
    return Array.isArray(done) ? done : [done];
  },
  async client_multiple(client, unit) {
    const script = unit.stmts.map((s) => s.sql).join(";\n");
    return [await attempt(async () => (await client.executeMultiple(script), { columns: [], rows: [], affected: null, lastRowid: null }))];
  },
  async client_transaction(client, unit) {
    const out = [];
    const tx = await attempt(() => client.transaction("write"));
    if (tx.error !== undefined) return [tx];
    out.push({ columns: [], rows: [], affected: null, lastRowid: null });
    try {
      for (const s of unit.stmts) out.push(await attempt(async () => rowsOf(await tx.execute(stmtOf(s)))));
      out.push(await attempt(async () => {
        await (unit.commit ? tx.commit() : tx.rollback());
        return { columns: [], rows: [], affected: null, lastRowid: null };
      }));
    } finally {
      tx.close();
    }
    return out;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const unit = JSON.parse(line);
  let answer;
  try {
    answer = { outcomes: await modes[unit.mode](clientFor(unit.url, unit.token), unit) };
  } catch (e) {
    answer = { crash: String(e?.stack ?? e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
