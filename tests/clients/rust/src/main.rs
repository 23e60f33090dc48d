//! The shared client scenario (tests/clients/README.md) with the Rust `libsql` crate,
//! remote feature only.
//!
//! Usage: rust-client URL TOKEN TABLE   (URL http://…; this client has no WebSocket)
//! Prints the scenario's results as one JSON object.
use libsql::{Builder, Connection, Value, params};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

fn canon(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i.to_string()),
        Value::Real(f) => json!(f.to_string()),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!(format!("x'{}'", hex(&b))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Json>> {
    let mut rows = conn.query(sql, ()).await.expect(sql);
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.expect("next row") {
        let n = row.column_count();
        out.push(
            (0..n)
                .map(|i| canon(row.get_value(i).expect("value")))
                .collect(),
        );
    }
    out
}

async fn one(conn: &Connection, sql: &str) -> Json {
    rows(conn, sql).await.remove(0).remove(0)
}

fn constraint<T>(result: &libsql::Result<T>) -> String {
    match result {
        Ok(_) => "no error".into(),
        Err(e) if e.to_string().contains("SQLITE_CONSTRAINT") => "SQLITE_CONSTRAINT".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, token, t) = (args[1].clone(), args[2].clone(), args[3].clone());
    let db = Builder::new_remote(url, token)
        .build()
        .await
        .expect("connect");
    let conn = db.connect().expect("connection");
    let mut out = serde_json::Map::new();

    conn.execute(&format!("DROP TABLE IF EXISTS {t}"), ())
        .await
        .expect("drop");
    conn.execute(
        &format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)"),
        (),
    )
    .await
    .expect("create");
    conn.execute(
        &format!("INSERT INTO {t} VALUES (1, 9223372036854775807, 3.25, 'héllo ✓ 日本', x'0001ff'), (2, -9223372036854775808, -0.5, '', x''), (3, NULL, NULL, NULL, NULL)"),
        (),
    )
    .await
    .expect("insert literals");
    let insert = format!("INSERT INTO {t} (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)");
    conn.execute(&insert, params![4, 42, 0.125, "param ✓", vec![0u8, 255u8]])
        .await
        .expect("insert params");
    conn.execute(
        &insert,
        params![5, Value::Null, Value::Null, Value::Null, Value::Null],
    )
    .await
    .expect("insert nulls");
    let all = rows(
        &conn,
        &format!("SELECT id, i, f, s, b, typeof(b) FROM {t} ORDER BY id"),
    )
    .await;
    out.insert("rows".into(), json!(all));

    // The client's batch: several statements in one call.
    conn.execute_batch(&format!(
        "INSERT INTO {t} (id, s) VALUES (6, 'six'); INSERT INTO {t} (id, s) VALUES (7, 'seven')"
    ))
    .await
    .expect("batch");
    let count = format!("SELECT count(*) FROM {t}");
    out.insert("afterBatch".into(), one(&conn, &count).await);

    let duplicate = conn
        .execute(&format!("INSERT INTO {t} (id) VALUES (1)"), ())
        .await;
    out.insert("constraint".into(), json!(constraint(&duplicate)));
    let message = duplicate.err().map(|e| e.to_string());
    out.insert("constraintMessage".into(), json!(message));

    for (name, id, commit) in [("txCommit", 8, true), ("txRollback", 9, false)] {
        let tx = conn.transaction().await.expect("begin");
        tx.execute(
            &format!("INSERT INTO {t} (id, s) VALUES ({id}, 'in a transaction')"),
            (),
        )
        .await
        .expect("insert in tx");
        let inside = one(&tx, &count).await;
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
        out.insert(
            name.into(),
            json!({"inside": inside, "after": one(&conn, &count).await}),
        );
    }

    let big = rows(
        &conn,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) SELECT x, x * x, 'row ' || x FROM c",
    )
    .await;
    let mut digest = Sha256::new();
    for row in &big {
        digest.update(serde_json::to_string(row).expect("json"));
        digest.update(b"\n");
    }
    out.insert(
        "big".into(),
        json!({"count": big.len(), "last": big.last(), "sha256": hex(&digest.finalize())}),
    );
    println!("{}", Json::Object(out));
}
