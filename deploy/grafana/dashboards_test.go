package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

type dashboard struct {
	file       string
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		RawSQL     string         `json:"rawSql"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

// rawSQL is a query variable's SQL: Grafana stores it either as a plain
// string or, with newer plugins, as a query object.
func (v variable) rawSQL() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		RawSQL string `json:"rawSql"`
	}
	json.Unmarshal(v.Query, &q)
	return q.RawSQL
}

// query is one SQL text of a dashboard, named for failure messages.
type query struct{ where, sql string }

func (d dashboard) queries() []query {
	var out []query
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, query{d.file + ": variable " + v.Name, v.rawSQL()})
		}
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, query{d.file + ": panel " + p.Title + " (" + t.RefID + ")", t.RawSQL})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found (%v)", err)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// provisionedDatasource is the data source the provisioning file creates.
func provisionedDatasource(t *testing.T) datasourceRef {
	t.Helper()
	b, err := os.ReadFile("provisioning/datasources/clickhouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Datasources []datasourceRef `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Datasources) != 1 || f.Datasources[0].UID == "" || f.Datasources[0].Type != "grafana-clickhouse-datasource" {
		t.Fatalf("want one grafana-clickhouse-datasource with a uid, got %+v", f.Datasources)
	}
	return f.Datasources[0]
}

func TestDashboardsReferToTheProvisionedDatasource(t *testing.T) {
	t.Parallel()
	ds := provisionedDatasource(t)
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", d.file)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q already used by %s", d.file, d.UID, other)
		}
		uids[d.UID] = d.file
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", d.file)
		}
		check := func(where string, ref *datasourceRef) {
			if ref == nil || *ref != ds {
				t.Errorf("%s: %s: datasource %+v, want %+v", d.file, where, ref, ds)
			}
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if p.Type == "row" {
					walk(p.Panels)
					continue
				}
				check("panel "+p.Title, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %s has no query", d.file, p.Title)
				}
				for _, q := range p.Targets {
					check("panel "+p.Title+" query "+q.RefID, q.Datasource)
					if strings.TrimSpace(q.RawSQL) == "" {
						t.Errorf("%s: panel %s query %s has no rawSql", d.file, p.Title, q.RefID)
					}
				}
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				check("variable "+v.Name, v.Datasource)
			}
		}
	}
}

func TestFillExpandsLikeGrafana(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	f := fill{
		from: from, to: from.Add(24 * time.Hour), interval: 5 * time.Minute,
		vars: map[string][]string{"db": {"sb"}, "team": {"a", "b"}, "one": {"x"}, "empty": {""}},
		all:  map[string]bool{"team": true},
	}
	picked := f
	picked.all = nil
	tests := []struct {
		name    string
		f       fill
		in      string
		want    string
		wantErr string
	}{
		{name: "time filter", f: f, in: "WHERE $__timeFilter(start)", want: "WHERE start >= toDateTime(1768435200) AND start <= toDateTime(1768521600)"},
		{name: "from and to", f: f, in: "$__fromTime,$__toTime", want: "toDateTime(1768435200),toDateTime(1768521600)"},
		{name: "interval seconds", f: f, in: "intDiv(x, $__interval_s)", want: "intDiv(x, 300)"},
		{name: "time interval", f: f, in: "$__timeInterval(start)", want: "toStartOfInterval(toDateTime(start), INTERVAL 300 second)"},
		{name: "millisecond filter", f: f, in: "$__timeFilter_ms(t)", want: "t >= fromUnixTimestamp64Milli(1768435200000) AND t <= fromUnixTimestamp64Milli(1768521600000)"},
		{name: "conditional all with All", f: f, in: "WHERE $__conditionalAll(team IN (${team:singlequote}), $team)", want: "WHERE 1=1"},
		{name: "conditional all with values", f: picked, in: "WHERE $__conditionalAll(team IN (${team:singlequote}), $team)", want: "WHERE team IN ('a','b')"},
		{name: "conditional all with empty value", f: f, in: "$__conditionalAll(x = '$empty', ${empty})", want: "1=1"},
		{name: "plain variable", f: f, in: "FROM ${db}.spans, $db.x", want: "FROM sb.spans, sb.x"},
		{name: "single value default format", f: f, in: "'$one'", want: "'x'"},
		{name: "quotes escaped", f: fill{vars: map[string][]string{"v": {"o'k"}}}, in: "${v:singlequote}", want: `'o\'k'`},
		{name: "unknown variable", f: f, in: "$nope", wantErr: `unknown variable "nope"`},
		{name: "unknown format", f: f, in: "${db:csv}", wantErr: `format "csv"`},
		{name: "unknown macro", f: f, in: "$__unixEpochFilter(t)", wantErr: "unknown macro $__unixEpochFilter"},
		{name: "wrong arity", f: f, in: "$__timeFilter(a, b)", wantErr: "takes 1 arguments, got 2"},
		{name: "unbalanced", f: f, in: "$__timeFilter(start", wantErr: "unbalanced"},
		{name: "stray dollar", f: f, in: "SELECT '$'", wantErr: "unfilled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.f.expand(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("expand(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
