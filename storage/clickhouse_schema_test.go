package storage

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var updateClusterSQL = flag.Bool("update-cluster-sql", false, "rewrite deploy/clickhouse/cluster.sql from the schema")

const clusterSQLPath = "../deploy/clickhouse/cluster.sql"

const clusterSQLHeader = `-- Switchboard on a ClickHouse cluster. Generated from storage/clickhouse_schema.go for database and
-- cluster "switchboard" (go test ./storage -run TestClusterSQLFileMatchesSchema -update-cluster-sql):
-- the gateway runs exactly these statements at start-up when storage.clickhouse.cluster is
-- "switchboard", so setting that is the usual way. To apply them by hand instead:
--   clickhouse-client --multiquery < deploy/clickhouse/cluster.sql
-- Needs: the cluster in remote_servers with internal_replication=true on every shard, ZooKeeper for
-- ON CLUSTER and replication, and the {shard} and {replica} macros on every node.
--
-- Local, replicated tables hold the data (*_local); Distributed tables carry the names the gateway
-- writes to and reads from. Spans are sharded by trace id, so a trace lives on one shard; the rollups
-- are filled by views on each shard's local span table.
`

func clusterSQL() string {
	var b strings.Builder
	b.WriteString(clusterSQLHeader)
	for _, stmt := range chSchema("switchboard", "switchboard") {
		b.WriteString("\n" + stmt + ";\n")
	}
	return b.String()
}

func TestClusterSQLFileMatchesSchema(t *testing.T) {
	want := clusterSQL()
	if *updateClusterSQL {
		if err := os.WriteFile(clusterSQLPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(clusterSQLPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: run go test ./storage -run TestClusterSQLFileMatchesSchema -update-cluster-sql", clusterSQLPath)
	}
}

// statement finds the one statement creating name (a table or view).
func statement(t *testing.T, stmts []string, name string) string {
	t.Helper()
	var found []string
	for _, s := range stmts {
		if strings.Contains(s, "EXISTS `sb`.`"+name+"`") {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d statements create %s", len(found), name)
	}
	return found[0]
}

func TestClusterDDLPerTable(t *testing.T) {
	t.Parallel()
	stmts := chSchema("sb", "c1")
	if stmts[0] != "CREATE DATABASE IF NOT EXISTS `sb` ON CLUSTER `c1`" {
		t.Errorf("database: %s", stmts[0])
	}
	tests := []struct {
		table, engine, shardBy string
	}{
		{"spans", "ReplicatedMergeTree('/clickhouse/tables/{shard}/sb/spans_local', '{replica}')", "cityHash64(trace_id)"},
		{"spend_daily_v2", "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/sb/spend_daily_v2_local', '{replica}')", "rand()"},
		{"trace_index", "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/sb/trace_index_local', '{replica}')", "cityHash64(trace_id)"},
		{"trace_list_v2", "ReplicatedMergeTree('/clickhouse/tables/{shard}/sb/trace_list_v2_local', '{replica}')", "cityHash64(trace_id)"},
		{"records", "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/sb/records_local', '{replica}', version)", "cityHash64(kind, id)"},
		{"audit", "ReplicatedMergeTree('/clickhouse/tables/{shard}/sb/audit_local', '{replica}')", "rand()"},
		{"rollups", "ReplicatedMergeTree('/clickhouse/tables/{shard}/sb/rollups_local', '{replica}')", "rand()"},
	}
	for _, tc := range tests {
		t.Run(tc.table, func(t *testing.T) {
			local := statement(t, stmts, tc.table+"_local")
			if !strings.HasPrefix(local, "CREATE TABLE IF NOT EXISTS `sb`.`"+tc.table+"_local` ON CLUSTER `c1` (") {
				t.Errorf("local table: %s", local)
			}
			if !strings.Contains(local, "ENGINE = "+tc.engine+"\n") {
				t.Errorf("local engine, want %s:\n%s", tc.engine, local)
			}
			dist := statement(t, stmts, tc.table)
			want := "CREATE TABLE IF NOT EXISTS `sb`.`" + tc.table + "` ON CLUSTER `c1` AS `sb`.`" + tc.table + "_local`\n" +
				"\tENGINE = Distributed(`c1`, `sb`, `" + tc.table + "_local`, " + tc.shardBy + ")"
			if dist != want {
				t.Errorf("distributed table:\n got %s\nwant %s", dist, want)
			}
		})
	}
	for _, v := range []struct{ view, to string }{
		{"spend_daily_v2_mv", "spend_daily_v2"}, {"trace_index_mv", "trace_index"}, {"trace_list_v2_mv", "trace_list_v2"},
	} {
		t.Run(v.view, func(t *testing.T) {
			s := statement(t, stmts, v.view)
			if !strings.HasPrefix(s, "CREATE MATERIALIZED VIEW IF NOT EXISTS `sb`.`"+v.view+"` ON CLUSTER `c1` TO `sb`.`"+v.to+"_local` AS") ||
				!strings.Contains(s, "FROM `sb`.`spans_local`") {
				t.Errorf("a view must read the local spans and feed the local rollup:\n%s", s)
			}
		})
	}
	if got, want := auditTTLStatement("sb", "c1", 90*24*time.Hour), "ALTER TABLE `sb`.`audit_local` ON CLUSTER `c1` MODIFY TTL time + INTERVAL 7776000 SECOND"; got != want {
		t.Errorf("audit TTL:\n got %s\nwant %s", got, want)
	}
}

func TestSingleNodeDDLHasNoClusterParts(t *testing.T) {
	t.Parallel()
	stmts := chSchema("sb", "")
	if len(stmts) != 1+len(chTables)+len(chViews) {
		t.Fatalf("%d statements, want one per database, table and view", len(stmts))
	}
	for _, s := range stmts {
		for _, bad := range []string{"ON CLUSTER", "Replicated", "Distributed", "_local", "{shard}", "{replica}"} {
			if strings.Contains(s, bad) {
				t.Errorf("single-node DDL contains %q:\n%s", bad, s)
			}
		}
	}
	spans := statement(t, stmts, "spans")
	if !strings.Contains(spans, "ENGINE = MergeTree\n\tPARTITION BY toYYYYMM(start)\n\tORDER BY (toStartOfHour(start), team, trace_id, span_id)") {
		t.Errorf("spans table changed:\n%s", spans)
	}
	if got, want := auditTTLStatement("sb", "", 36*time.Hour), "ALTER TABLE `sb`.`audit` MODIFY TTL time + INTERVAL 129600 SECOND"; got != want {
		t.Errorf("audit TTL:\n got %s\nwant %s", got, want)
	}
}

func TestSpendPiecesUseTheRollupOnlyWhereComplete(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	d0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	since := d0.Add(2*day + 5*time.Hour) // rollup complete from d0+3d
	tests := []struct {
		name  string
		q     SpendQuery
		since time.Time
		want  []piece
	}{
		{"fresh database", SpendQuery{From: d0.Add(time.Hour), To: d0.Add(5 * day)}, time.Time{},
			[]piece{{d0.Add(time.Hour), d0.Add(day), false}, {d0.Add(day), d0.Add(5 * day), true}}},
		{"range before the rollup", SpendQuery{From: d0, To: d0.Add(3 * day)}, since, []piece{{d0, d0.Add(3 * day), false}}},
		{"range across the cut", SpendQuery{From: d0.Add(time.Hour), To: d0.Add(6*day + time.Hour)}, since,
			[]piece{{d0.Add(time.Hour), d0.Add(day), false}, {d0.Add(day), d0.Add(3 * day), false},
				{d0.Add(3 * day), d0.Add(6 * day), true}, {d0.Add(6 * day), d0.Add(6*day + time.Hour), false}}},
		{"open start", SpendQuery{To: d0.Add(4 * day)}, since, []piece{{time.Time{}, d0.Add(3 * day), false}, {d0.Add(3 * day), d0.Add(4 * day), true}}},
		{"open end after the cut", SpendQuery{From: d0.Add(4 * day)}, since, []piece{{d0.Add(4 * day), time.Time{}, true}}},
		{"hourly never", SpendQuery{From: d0, To: d0.Add(9 * day), Bucket: BucketHour}, time.Time{}, []piece{{d0, d0.Add(9 * day), false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := spendPieces(tc.q, tc.since)
			if len(got) != len(tc.want) {
				t.Fatalf("pieces %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if !got[i].from.Equal(tc.want[i].from) || !got[i].to.Equal(tc.want[i].to) || got[i].daily != tc.want[i].daily {
					t.Fatalf("pieces %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}
