package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseReportsFieldAndLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // every fragment must appear in the error
	}{
		{
			name: "unknown key names its line and the known ones",
			yaml: "server:\n  listen: 127.0.0.1:1\n  lisen: x\n",
			want: []string{"cfg.yaml:3: server.lisen: unknown field", "listen"},
		},
		{
			name: "unknown top-level section",
			yaml: "log:\n  level: info\nmodel: []\n",
			want: []string{"cfg.yaml:3: model: unknown field"},
		},
		{
			name: "wrong type names the field and line",
			yaml: "server:\n  listen: 127.0.0.1:1\n  max_body_bytes: [1, 2]\n",
			want: []string{"cfg.yaml:3:", "server.max_body_bytes"},
		},
		{
			name: "validation error carries the line of its field",
			yaml: "server:\n  listen: nonsense\n",
			want: []string{"cfg.yaml:2: server.listen: must be host:port"},
		},
		{
			name: "several validation errors at once",
			yaml: "log:\n  format: xml\n  level: loud\n",
			want: []string{"cfg.yaml:2: log.format", "cfg.yaml:3: log.level"},
		},
		{
			name: "bad duration",
			yaml: "server:\n  read_timeout: soon\n",
			want: []string{"server.read_timeout", "cfg.yaml:2"},
		},
		{
			name: "broken YAML",
			yaml: "server:\n  listen: [\n",
			want: []string{"cfg.yaml:2: did not find expected node content"},
		},
		{
			name: "missing env reference names the variable, not a value",
			yaml: "server:\n  listen: env:SWITCHBOARD_TEST_SURELY_UNSET\n",
			want: []string{"environment variable SWITCHBOARD_TEST_SURELY_UNSET is not set", "cfg.yaml:2"},
		},
		{
			name: "section of the wrong kind",
			yaml: "server: 8080\n",
			want: []string{"cfg.yaml:1: server: must be a mapping"},
		},
		{
			name: "a duration without a unit would be nanoseconds",
			yaml: "router:\n  timeout: 60\n",
			want: []string{`cfg.yaml:2: router.timeout: 60 has no unit; write "60s"`},
		},
		{
			name: "a fractional duration without a unit",
			yaml: "server:\n  listen: 127.0.0.1:1\n  shutdown_timeout: 2.5\n",
			want: []string{`cfg.yaml:3: server.shutdown_timeout: 2.5 has no unit; write "2.5s"`},
		},
		{
			name: "a duration without a unit in another package's section",
			yaml: "trace:\n  flush_interval: 5\n",
			want: []string{"cfg.yaml:2: trace.flush_interval: 5 has no unit"},
		},
		{
			name: "a duration without a unit inside a list",
			yaml: "a2a:\n  agents:\n    - name: r\n      card_url: http://127.0.0.1:1/card\n      timeout: 30\n",
			want: []string{"cfg.yaml:5: a2a.agents[0].timeout: 30 has no unit"},
		},
		{
			name: "a float for an integer field",
			yaml: "server:\n  max_body_bytes: 1.5\n",
			want: []string{"cfg.yaml:2: server.max_body_bytes: must be a whole number, got 1.5"},
		},
		{
			name: "a boolean for an integer field",
			yaml: "server:\n  max_body_bytes: true\n",
			want: []string{"cfg.yaml:2: server.max_body_bytes: must be a whole number, got true"},
		},
		{
			name: "every decode error carries file and line, not just the first",
			yaml: "router:\n  timeout: 60\n  cooldown: 30\n",
			want: []string{"cfg.yaml:2: router.timeout: 60 has no unit", "cfg.yaml:3: router.cooldown: 30 has no unit"},
		},
		{
			name: "every missing env reference carries file and line",
			yaml: "server:\n  listen: env:SWITCHBOARD_TEST_SURELY_UNSET\n  public_url: env:SWITCHBOARD_TEST_SURELY_UNSET\n",
			want: []string{
				"cfg.yaml:2: server.listen: environment variable SWITCHBOARD_TEST_SURELY_UNSET is not set",
				"cfg.yaml:3: server.public_url: environment variable SWITCHBOARD_TEST_SURELY_UNSET is not set",
			},
		},
		{
			name: "two stores: the gateway would use ClickHouse and never open the SQLite file",
			yaml: "storage:\n  sqlite: {path: data/sb.db}\n  clickhouse: {addr: \"127.0.0.1:9000\"}\n",
			want: []string{"cfg.yaml:2: storage.sqlite: set together with storage.clickhouse"},
		},
		{
			name: "metrics auth without a credential a scrape could send",
			yaml: "server:\n  metrics_auth: true\n",
			want: []string{"cfg.yaml:2: server.metrics_auth: needs server.metrics_token or governance.admin_key"},
		},
		{
			name: "a metrics token without metrics auth leaves /metrics public",
			yaml: "server:\n  metrics_token: scrape-token-0123456789\n",
			want: []string{"cfg.yaml:2: server.metrics_token: set without server.metrics_auth: true"},
		},
		{
			name: "a short metrics token",
			yaml: "server:\n  metrics_auth: true\n  metrics_token: short\n",
			want: []string{"cfg.yaml:3: server.metrics_token: must be at least 16 characters"},
		},
		{
			name: "a YAML syntax error has the file:line shape too",
			yaml: "server:\n  listen: x\n bad: [\n",
			want: []string{"cfg.yaml:2: did not find expected key"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), "cfg.yaml")
			if err == nil {
				t.Fatal("Parse accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !errorLine.MatchString(line) {
					t.Errorf("error line %q is not file:line: message", line)
				}
			}
		})
	}
}

// errorLine is the shape of every line of a Parse error: file, line, then the message (which starts with the
// field path unless the YAML itself is broken).
var errorLine = regexp.MustCompile(`^cfg\.yaml:[1-9][0-9]*: [^ '"]`)

func TestParseDurations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml string
		want time.Duration
	}{
		{"router:\n  timeout: 60s\n", 60 * time.Second},
		{"router:\n  timeout: 1m30s\n", 90 * time.Second},
		{"router:\n  timeout: 1.5s\n", 1500 * time.Millisecond},
		// Zero is zero in every unit, and each duration field documents what 0 (unset) means.
		{"router:\n  timeout: 0\n", 0},
		{"router:\n  timeout: \"0\"\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte(tc.yaml), "cfg.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Router.Timeout != tc.want {
				t.Errorf("router.timeout = %v, want %v", cfg.Router.Timeout, tc.want)
			}
		})
	}
}

func TestEnvironmentDurationWithoutUnitIsRejected(t *testing.T) {
	t.Setenv("SWITCHBOARD_SERVER_SHUTDOWN_TIMEOUT", "30")
	_, err := Parse([]byte("log:\n  level: info\n"), "cfg.yaml")
	if err == nil || !strings.Contains(err.Error(), "server.shutdown_timeout") {
		t.Fatalf("want a server.shutdown_timeout error, got %v", err)
	}
}

func TestParseDefaultsAndValues(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("server:\n  listen: 0.0.0.0:9999\n  shutdown_timeout: 5s\n"), "cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "0.0.0.0:9999" || cfg.Server.ShutdownTimeout != 5*time.Second {
		t.Errorf("values from the file not applied: %+v", cfg.Server)
	}
	if cfg.Server.MaxBodyBytes != Default().Server.MaxBodyBytes || cfg.Log.Format != "json" {
		t.Errorf("defaults not kept for fields the file leaves out: %+v", cfg)
	}
	empty, err := Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatalf("an empty file should mean all defaults: %v", err)
	}
	if !reflect.DeepEqual(*empty, Default()) {
		t.Errorf("empty file: got %+v", *empty)
	}
}

// Environment tests change the process environment, so they do not run in parallel.
func TestEnvironmentOverridesAndSecrets(t *testing.T) {
	t.Setenv("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:7777")
	t.Setenv("SWITCHBOARD_LOG_LEVEL", "debug")
	t.Setenv("SB_TEST_FORMAT", "text")
	cfg, err := Parse([]byte("server:\n  listen: 127.0.0.1:1\nlog:\n  format: env:SB_TEST_FORMAT\n"), "cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:7777" {
		t.Errorf("SWITCHBOARD_SERVER_LISTEN did not override the file: %q", cfg.Server.Listen)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("SWITCHBOARD_LOG_LEVEL did not override the default: %q", cfg.Log.Level)
	}
	if cfg.Log.Format != "text" {
		t.Errorf("env:SB_TEST_FORMAT not resolved: %q", cfg.Log.Format)
	}
}

func TestInvalidEnvironmentOverrideIsRejected(t *testing.T) {
	t.Setenv("SWITCHBOARD_LOG_FORMAT", "yaml")
	_, err := Parse([]byte("log:\n  level: info\n"), "cfg.yaml")
	if err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("want a log.format error, got %v", err)
	}
}

// An error in a value an environment variable set names that variable, not the line of the file that the
// variable overrode (or of the section around it), which holds another value or none.
func TestEnvironmentOverrideErrorNamesTheVariable(t *testing.T) {
	file := "server:\n  listen: 127.0.0.1:1\n  max_body_bytes: 1024\nlog:\n  level: info\n"
	cases := []struct {
		env, value string
		want       string
	}{
		{"SWITCHBOARD_SERVER_LISTEN", "nonsense",
			`cfg.yaml: server.listen: must be host:port, got "nonsense" (set by SWITCHBOARD_SERVER_LISTEN)`},
		{"SWITCHBOARD_SERVER_MAX_BODY_BYTES", "1.5",
			`cfg.yaml: server.max_body_bytes: must be a whole number, got "1.5" (set by SWITCHBOARD_SERVER_MAX_BODY_BYTES)`},
		{"SWITCHBOARD_SERVER_MAX_HEADER_BYTES", "lots",
			`cfg.yaml: server.max_header_bytes: must be a whole number, got "lots" (set by SWITCHBOARD_SERVER_MAX_HEADER_BYTES)`},
		{"SWITCHBOARD_LOG_LEVEL", "loud",
			`cfg.yaml: log.level: must be debug, info, warn or error, got "loud" (set by SWITCHBOARD_LOG_LEVEL)`},
		{"SWITCHBOARD_STORAGE_CLICKHOUSE_ADDR", "nohost",
			`cfg.yaml: storage.clickhouse.addr: "nohost" must be host:port (set by SWITCHBOARD_STORAGE_CLICKHOUSE_ADDR)`},
		{"SWITCHBOARD_TRACE_FLUSH_INTERVAL", "5",
			`cfg.yaml: trace.flush_interval: 5 has no unit; write "5s" (or ms, m, h) (set by SWITCHBOARD_TRACE_FLUSH_INTERVAL)`},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			_, err := Parse([]byte(file), "cfg.yaml")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got error\n  %v\nwant\n  %s", err, tc.want)
			}
		})
	}
}

// Integer overrides are text; those weak decoding reads must keep working.
func TestEnvironmentWholeNumbers(t *testing.T) {
	for value, want := range map[string]int{"2048": 2048, "0x800": 2048} {
		t.Run(value, func(t *testing.T) {
			t.Setenv("SWITCHBOARD_SERVER_MAX_HEADER_BYTES", value)
			cfg, err := Parse([]byte("log:\n  level: info\n"), "cfg.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.MaxHeaderBytes != want {
				t.Errorf("server.max_header_bytes = %d, want %d", cfg.Server.MaxHeaderBytes, want)
			}
		})
	}
}

// Map keys are names (model patterns, header names): they must reach the packages exactly as written.
func TestParseKeepsNamesInMapKeys(t *testing.T) {
	t.Parallel()
	yaml := `
models:
  - name: GPT-4.1-Mini
    deployments:
      - provider: openai
        base_url: http://127.0.0.1:1/v1
        headers: {X-Title.Case: kept}
    pricing: {input_per_mtok: 0.15, output_per_mtok: 0.60}
governance:
  secret: 0123456789abcdef0123
  keys:
    - name: a
      key_hash: "00000000000000000000000000000000000000000000000000000000000000ab"
      expires: 2027-01-31
      limits:
        per_model: {"gpt-4.1*": {rpm: 5}, "GPT-4o": {rpm: 7}}
`
	cfg, err := Parse([]byte(yaml), "cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pm := cfg.Governance.Keys[0].Limits.PerModel
	if pm["gpt-4.1*"].RPM != 5 || pm["GPT-4o"].RPM != 7 {
		t.Errorf("per_model patterns changed: %+v", pm)
	}
	if h := cfg.Models[0].Deployments[0].Headers; h["X-Title.Case"] != "kept" {
		t.Errorf("header names changed: %+v", h)
	}
	if cfg.Models[0].Name != "GPT-4.1-Mini" {
		t.Errorf("model name changed: %q", cfg.Models[0].Name)
	}
	if p := cfg.Models[0].Pricing; p.InputPerMTok != "0.15" || p.OutputPerMTok != "0.6" {
		t.Errorf("prices not kept exactly: %+v", p)
	}
	if got := cfg.Governance.Keys[0].Expires; got != "2027-01-31" {
		t.Errorf("unquoted date became %q", got)
	}
}

// A SWITCHBOARD_<section>_… variable that names no field is an error naming it and the field it probably meant;
// the repository's other SWITCHBOARD_ variables (the config path, secrets the deploy files read with env:,
// test, benchmark and Grafana settings) are not overrides and pass.
func TestMisspeltEnvironmentOverrideIsRejected(t *testing.T) {
	const file = "server:\n  listen: 127.0.0.1:1\n"
	cases := []struct {
		name  string
		env   map[string]string
		file  string
		wants []string // fragments of the error; none: Parse succeeds
	}{
		{
			name:  "a misspelt field",
			env:   map[string]string{"SWITCHBOARD_SERVER_LISTN": "0.0.0.0:8080"},
			wants: []string{"cfg.yaml: SWITCHBOARD_SERVER_LISTN: names no config field; did you mean SWITCHBOARD_SERVER_LISTEN (server.listen)?"},
		},
		{
			name:  "a misspelt section",
			env:   map[string]string{"SWITCHBOARD_SERVR_LISTEN": "0.0.0.0:8080"},
			wants: []string{"SWITCHBOARD_SERVR_LISTEN: names no config field; did you mean SWITCHBOARD_SERVER_LISTEN (server.listen)?"},
		},
		{
			name:  "a nested field",
			env:   map[string]string{"SWITCHBOARD_STORAGE_CLICKHOUSE_ADR": "127.0.0.1:9000"},
			wants: []string{"SWITCHBOARD_STORAGE_CLICKHOUSE_ADR: names no config field; did you mean SWITCHBOARD_STORAGE_CLICKHOUSE_ADDR (storage.clickhouse.addr)?"},
		},
		{
			name:  "lower case, which the override would not read",
			env:   map[string]string{"SWITCHBOARD_log_level": "debug"},
			wants: []string{"SWITCHBOARD_log_level: names no config field; did you mean SWITCHBOARD_LOG_LEVEL (log.level)?"},
		},
		{
			name:  "a list, which only the file sets",
			env:   map[string]string{"SWITCHBOARD_MODELS_0_NAME_OF_THE_MODEL": "gpt"},
			wants: []string{"SWITCHBOARD_MODELS_0_NAME_OF_THE_MODEL: names no config field (an environment variable sets a scalar field"},
		},
		{
			name: "every misspelt variable at once, next to a file error",
			env:  map[string]string{"SWITCHBOARD_SERVER_LISTN": "x", "SWITCHBOARD_LOG_LEVL": "debug"},
			file: "server:\n  listen: nonsense\n",
			wants: []string{"cfg.yaml: SWITCHBOARD_LOG_LEVL: names no config field; did you mean SWITCHBOARD_LOG_LEVEL",
				"cfg.yaml: SWITCHBOARD_SERVER_LISTN:", "cfg.yaml:2: server.listen: must be host:port"},
		},
		{
			name: "variables that are not overrides",
			env: map[string]string{
				"SWITCHBOARD_CONFIG": "/etc/switchboard/config.yaml", "SWITCHBOARD_SECRET": "0123456789abcdef0123",
				"SWITCHBOARD_ADMIN_KEY": "sk-sb-admin-test-000000000000000000", "SWITCHBOARD_TEST_CLICKHOUSE": "127.0.0.1:9000",
				"SWITCHBOARD_TEST_REDIS": "127.0.0.1:6379", "SWITCHBOARD_BENCH_SPANS": "1000",
				"SWITCHBOARD_UI_SCREENSHOTS": "/tmp/shots", "SWITCHBOARD_CLICKHOUSE_HOST": "clickhouse",
				"SWITCHBOARD_CLICKHOUSE_PASSWORD": "pw", "SWITCHBOARD_SERVER_LISTEN": "127.0.0.1:2",
			},
		},
		{
			name: "a variable the file reads with env: is the file's business",
			env:  map[string]string{"SWITCHBOARD_SERVER_URL": "https://gw.example.com"},
			file: "server:\n  public_url: env:SWITCHBOARD_SERVER_URL\n",
		},
		{
			name: "an empty variable is unset",
			env:  map[string]string{"SWITCHBOARD_SERVER_LISTN": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.file == "" {
				tc.file = file
			}
			_, err := Parse([]byte(tc.file), "cfg.yaml")
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse accepted a misspelt override")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A governance section with several mistakes reports each of them, in the order of the file; it used to stop at
// the first, so fixing a file took one run per mistake.
func TestParseReportsEveryGovernanceError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string // the whole error, line by line
	}{
		{
			name: "secrets, teams and keys",
			yaml: `governance:
  secret: short
  admin_key: tiny
  teams:
    - name: "Bad Team!"
      budget: {usd: "-1", period: 1d}
    - name: ok
      limits: {rpm: -5}
  keys:
    - name: a
      key: sk-short
      team: nope
    - name: a
      key_hash: zzz
      allow: {models: [""]}
`,
			want: []string{
				"cfg.yaml:2: governance.secret: must be at least 16 characters (it keys the HMAC of every API key)",
				"cfg.yaml:3: governance.admin_key: must be at least 16 characters",
				"cfg.yaml:5: governance.teams[0].name: must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$",
				"cfg.yaml:6: governance.teams[0].budget.usd: must not be negative",
				"cfg.yaml:8: governance.teams[1].limits.rpm: must be between 0 (unlimited) and 100000000",
				"cfg.yaml:11: governance.keys[0].key: must be at least 16 characters",
				`cfg.yaml:12: governance.keys[0].team: unknown team "nope"`,
				`cfg.yaml:13: governance.keys[1].name: duplicate key name "a"`,
				"cfg.yaml:14: governance.keys[1].key_hash: want 64 hex characters (HMAC-SHA-256 of the key under secret)",
				"cfg.yaml:15: governance.keys[1].allow.models[0]: must not be empty",
			},
		},
		{
			name: "redis and per-model limits",
			yaml: `governance:
  redis:
    addr: nowhere
    db: 99
  keys:
    - name: k
      key: sk-long-enough-0123456789
      limits:
        per_model:
          "gpt-4.1*": {rpm: -1}
          "o1*": {tpm: -1}
`,
			want: []string{
				// The secret is not in the file: its error names the line of the section.
				"cfg.yaml:2: governance.secret: must be at least 16 characters (it keys the HMAC of every API key)",
				`cfg.yaml:3: governance.redis.addr: must be host:port, got "nowhere"`,
				"cfg.yaml:4: governance.redis.db: must be 0..15",
				`cfg.yaml:10: governance.keys[0].limits.per_model["gpt-4.1*"].rpm: must be between 0 (unlimited) and 100000000`,
				`cfg.yaml:11: governance.keys[0].limits.per_model["o1*"].tpm: must be between 0 (unlimited) and 100000000`,
			},
		},
		{
			// Neither hash can be read, so neither is a key another entry repeats.
			name: "two unreadable key hashes",
			yaml: `governance:
  secret: secret-0123456789abcdef
  keys:
    - name: a
      key_hash: zzz
    - name: b
      key_hash: "hmac-sha256:0123"
`,
			want: []string{
				"cfg.yaml:5: governance.keys[0].key_hash: want 64 hex characters (HMAC-SHA-256 of the key under secret)",
				"cfg.yaml:7: governance.keys[1].key_hash: want 64 hex characters (HMAC-SHA-256 of the key under secret)",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), "cfg.yaml")
			if err == nil {
				t.Fatal("Parse accepted a bad config")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// trace.otlp is read from the file with its header values as env: secrets; an unset variable or a bad endpoint
// is an error naming the field, never a header's value.
func TestTraceOTLPConfig(t *testing.T) {
	t.Setenv("SB_TEST_OTLP_KEY", "hc-secret-0123")
	tests := []struct {
		name, yaml, want string // want "" = valid
	}{
		{"env header", "trace:\n  otlp:\n    endpoint: http://collector:4318\n    timeout: 5s\n    headers:\n      x-honeycomb-team: env:SB_TEST_OTLP_KEY\n", ""},
		{"unset variable", "trace:\n  otlp:\n    endpoint: http://collector:4318\n    headers:\n      x-honeycomb-team: env:SB_TEST_OTLP_SURELY_UNSET\n",
			"SB_TEST_OTLP_SURELY_UNSET is not set"},
		{"bad endpoint", "trace:\n  otlp:\n    endpoint: collector:4317\n", "trace.otlp.endpoint"},
		{"unknown key", "trace:\n  otlp:\n    endpont: http://collector:4318\n", "endpont"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "cfg.yaml")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := cfg.Trace.OTLP
			if o == nil || o.Endpoint != "http://collector:4318" || o.Timeout != 5*time.Second || o.Headers["x-honeycomb-team"] != "hc-secret-0123" {
				t.Fatalf("trace.otlp %+v", o)
			}
		})
	}
}
