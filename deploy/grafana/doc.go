// Package grafana holds Switchboard's Grafana dashboards (dashboards/*.json,
// for the grafana-clickhouse-datasource plugin) and provisioning files. It has
// no code: its tests prove every panel's SQL runs on the gateway's ClickHouse
// schema once Grafana's macros are filled in.
package grafana
