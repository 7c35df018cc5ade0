-- Switchboard on a ClickHouse cluster. Generated from storage/clickhouse_schema.go for database and
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

CREATE DATABASE IF NOT EXISTS `switchboard` ON CLUSTER `switchboard`;

CREATE TABLE IF NOT EXISTS `switchboard`.`spans_local` ON CLUSTER `switchboard` (
		start DateTime,
		start_ns Int64,
		trace_id FixedString(16),
		span_id FixedString(8),
		parent_span_id FixedString(8),
		layer String,
		name String,
		duration_ns Int64,
		status String,
		http_status Int32,
		error String,
		key_id String,
		key_name String,
		team String,
		org String,
		model String,
		provider String,
		deployment String,
		tool_server String,
		tool String,
		agent String,
		input_tokens Int64,
		output_tokens Int64,
		cached_tokens Int64,
		cost_nano Int64,
		retries Int32,
		fallbacks Int32,
		ttft_ns Int64,
		attr_keys Array(String),
		attr_values Array(String)
	) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/switchboard/spans_local', '{replica}')
	PARTITION BY toYYYYMM(start)
	ORDER BY (toStartOfHour(start), team, trace_id, span_id);

CREATE TABLE IF NOT EXISTS `switchboard`.`spans` ON CLUSTER `switchboard` AS `switchboard`.`spans_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `spans_local`, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS `switchboard`.`spend_daily_v2_local` ON CLUSTER `switchboard` (
		day DateTime,
		team String,
		key_id String,
		layer String,
		model String,
		provider String,
		tool_server String,
		tool String,
		agent String,
		spans UInt64,
		cost_nano Int64,
		requests UInt64,
		errors UInt64,
		input_tokens Int64,
		output_tokens Int64,
		cached_tokens Int64,
		latencyMap Nested(bucket UInt16, calls UInt64)
	) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/switchboard/spend_daily_v2_local', '{replica}')
	PARTITION BY toYYYYMM(day)
	ORDER BY (day, team, key_id, layer, model, provider, tool_server, tool, agent);

CREATE TABLE IF NOT EXISTS `switchboard`.`spend_daily_v2` ON CLUSTER `switchboard` AS `switchboard`.`spend_daily_v2_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `spend_daily_v2_local`, rand());

CREATE TABLE IF NOT EXISTS `switchboard`.`trace_index_local` ON CLUSTER `switchboard` (
		trace_id FixedString(16),
		start_min AggregateFunction(min, DateTime),
		start_max AggregateFunction(max, DateTime)
	) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/switchboard/trace_index_local', '{replica}')
	ORDER BY trace_id;

CREATE TABLE IF NOT EXISTS `switchboard`.`trace_index` ON CLUSTER `switchboard` AS `switchboard`.`trace_index_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `trace_index_local`, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS `switchboard`.`trace_list_v2_local` ON CLUSTER `switchboard` (
		day DateTime,
		trace_id FixedString(16),
		start_ns Int64,
		duration_ns Int64,
		status String,
		cost_nano Int64,
		input_tokens Int64,
		output_tokens Int64,
		name String,
		layer String,
		team String,
		key_id String,
		key_name String
	) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/switchboard/trace_list_v2_local', '{replica}')
	PARTITION BY toYYYYMM(day)
	ORDER BY (day, trace_id);

CREATE TABLE IF NOT EXISTS `switchboard`.`trace_list_v2` ON CLUSTER `switchboard` AS `switchboard`.`trace_list_v2_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `trace_list_v2_local`, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS `switchboard`.`records_local` ON CLUSTER `switchboard` (
		kind String,
		id String,
		data String,
		deleted UInt8,
		version Int64
	) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/switchboard/records_local', '{replica}', version)
	ORDER BY (kind, id);

CREATE TABLE IF NOT EXISTS `switchboard`.`records` ON CLUSTER `switchboard` AS `switchboard`.`records_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `records_local`, cityHash64(kind, id));

CREATE TABLE IF NOT EXISTS `switchboard`.`audit_local` ON CLUSTER `switchboard` (
		time DateTime,
		time_ns Int64,
		actor String,
		actor_name String,
		team String,
		action String,
		target String,
		rule String,
		status String,
		remote_addr String,
		request_id String,
		detail String
	) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/switchboard/audit_local', '{replica}')
	PARTITION BY toYYYYMM(time)
	ORDER BY (time, team, actor);

CREATE TABLE IF NOT EXISTS `switchboard`.`audit` ON CLUSTER `switchboard` AS `switchboard`.`audit_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `audit_local`, rand());

CREATE TABLE IF NOT EXISTS `switchboard`.`rollups_local` ON CLUSTER `switchboard` (
		name String,
		since_ns Int64
	) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/switchboard/rollups_local', '{replica}')
	ORDER BY name;

CREATE TABLE IF NOT EXISTS `switchboard`.`rollups` ON CLUSTER `switchboard` AS `switchboard`.`rollups_local`
	ENGINE = Distributed(`switchboard`, `switchboard`, `rollups_local`, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS `switchboard`.`spend_daily_v2_mv` ON CLUSTER `switchboard` TO `switchboard`.`spend_daily_v2_local` AS
	SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day,
		team, key_id, layer, model, provider, tool_server, tool, agent,
		count() AS spans, sum(cost_nano) AS cost_nano,
		countIf(NOT (layer = 'llm' AND substring(name, 1, 8) = 'attempt ')) AS requests,
		countIf(status = 'error' AND NOT (layer = 'llm' AND substring(name, 1, 8) = 'attempt ')) AS errors,
		sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens,
		tupleElement(sumMap([toUInt16(if(duration_ns <= 0, 0, round(log(duration_ns) / log(1.01))))], [toUInt64(NOT (layer = 'llm' AND substring(name, 1, 8) = 'attempt '))]), 1) AS `latencyMap.bucket`, tupleElement(sumMap([toUInt16(if(duration_ns <= 0, 0, round(log(duration_ns) / log(1.01))))], [toUInt64(NOT (layer = 'llm' AND substring(name, 1, 8) = 'attempt '))]), 2) AS `latencyMap.calls`
	FROM `switchboard`.`spans_local`
	GROUP BY day, team, key_id, layer, model, provider, tool_server, tool, agent;

CREATE MATERIALIZED VIEW IF NOT EXISTS `switchboard`.`trace_index_mv` ON CLUSTER `switchboard` TO `switchboard`.`trace_index_local` AS
	SELECT trace_id, minState(start) AS start_min, maxState(start) AS start_max
	FROM `switchboard`.`spans_local`
	GROUP BY trace_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS `switchboard`.`trace_list_v2_mv` ON CLUSTER `switchboard` TO `switchboard`.`trace_list_v2_local` AS
	SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day, trace_id,
		start_ns, duration_ns, status, cost_nano, input_tokens, output_tokens, name, layer, team, key_id, key_name
	FROM `switchboard`.`spans_local`;
