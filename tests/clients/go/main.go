// The shared client scenario (tests/clients/README.md) with the Go client
// github.com/tursodatabase/libsql-client-go over database/sql.
//
// Usage: go-client URL TOKEN TABLE   (URL http://… or ws://…)
// Prints the scenario's results as one JSON object.
package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tursodatabase/libsql-client-go/libsql"
)

func canon(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return "x'" + hex.EncodeToString(x) + "'"
	case string:
		return x
	default:
		return fmt.Sprintf("unexpected %T", v)
	}
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func rows(ctx context.Context, q querier, query string, args ...any) [][]any {
	rs, err := q.QueryContext(ctx, query, args...)
	check(err)
	defer rs.Close()
	cols, err := rs.Columns()
	check(err)
	var out [][]any
	for rs.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		check(rs.Scan(ptrs...))
		row := make([]any, len(cols))
		for i, v := range values {
			row[i] = canon(v)
		}
		out = append(out, row)
	}
	check(rs.Err())
	return out
}

func one(ctx context.Context, q querier, query string) any {
	return rows(ctx, q, query)[0][0]
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// This client reports an error's message only, not its code: SQLite's wording names
// the kind.
func constraint(err error) string {
	if err == nil {
		return "no error"
	}
	if strings.Contains(err.Error(), "constraint failed") {
		return "SQLITE_CONSTRAINT"
	}
	return err.Error()
}

func message(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

func main() {
	url, token, t := os.Args[1], os.Args[2], os.Args[3]
	connector, err := libsql.NewConnector(url, libsql.WithAuthToken(token))
	check(err)
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx := context.Background()
	out := map[string]any{}

	_, err = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t)
	check(err)
	_, err = db.ExecContext(ctx, "CREATE TABLE "+t+" (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)")
	check(err)
	_, err = db.ExecContext(ctx, "INSERT INTO "+t+" VALUES (1, 9223372036854775807, 3.25, 'héllo ✓ 日本', x'0001ff'), (2, -9223372036854775808, -0.5, '', x''), (3, NULL, NULL, NULL, NULL)")
	check(err)
	_, err = db.ExecContext(ctx, "INSERT INTO "+t+" (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)", 4, 42, 0.125, "param ✓", []byte{0, 255})
	check(err)
	_, err = db.ExecContext(ctx, "INSERT INTO "+t+" (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)", 5, nil, nil, nil, nil)
	check(err)
	out["rows"] = rows(ctx, db, "SELECT id, i, f, s, b, typeof(b) FROM "+t+" ORDER BY id")

	// The client's batch: several statements in one call. Over WebSocket this client
	// refuses a string of several statements (sqld's answer is the same), so there
	// they go one by one.
	batch := "INSERT INTO " + t + " (id, s) VALUES (6, 'six'); INSERT INTO " + t + " (id, s) VALUES (7, 'seven')"
	if strings.HasPrefix(url, "ws") {
		for _, statement := range strings.Split(batch, "; ") {
			_, err = db.ExecContext(ctx, statement)
			check(err)
		}
	} else {
		_, err = db.ExecContext(ctx, batch)
		check(err)
	}
	out["afterBatch"] = one(ctx, db, "SELECT count(*) FROM "+t)

	_, err = db.ExecContext(ctx, "INSERT INTO "+t+" (id) VALUES (1)")
	out["constraint"] = constraint(err)
	out["constraintMessage"] = message(err)

	for _, step := range []struct {
		name   string
		id     int
		commit bool
	}{{"txCommit", 8, true}, {"txRollback", 9, false}} {
		tx, err := db.BeginTx(ctx, nil)
		check(err)
		_, err = tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (id, s) VALUES (%d, 'in a transaction')", t, step.id))
		check(err)
		inside := one(ctx, tx, "SELECT count(*) FROM "+t)
		if step.commit {
			check(tx.Commit())
		} else {
			check(tx.Rollback())
		}
		out[step.name] = map[string]any{"inside": inside, "after": one(ctx, db, "SELECT count(*) FROM "+t)}
	}

	big := rows(ctx, db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) SELECT x, x * x, 'row ' || x FROM c")
	digest := sha256.New()
	for _, row := range big {
		line, _ := json.Marshal(row)
		digest.Write(line)
		digest.Write([]byte("\n"))
	}
	out["big"] = map[string]any{"count": len(big), "last": big[len(big)-1], "sha256": hex.EncodeToString(digest.Sum(nil))}

	encoded, err := json.Marshal(out)
	check(err)
	fmt.Println(string(encoded))
}
