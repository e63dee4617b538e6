# Scale-out on one machine: the test cluster is the coordinator, two more
# embedded clusters (shard_a, shard_b: own data directories, sockets and
# ports) are its nodes.  A sharded feature group is created, loaded by
# INSERT, COPY and ingest_statoil through the coordinator, with the nodes'
# expectations refusing bad rows (the node named); its merged statistics
# equal one server's over the same rows; a node stopped mid-statement and
# while down gives clear errors and leaves nothing half-written; it comes
# back and everything works again.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $repo = "$FindBin::Bin/../..";
my $cluster = "$repo/test/harness/cluster.sh";
my @nodes = ('shard_a', 'shard_b');

# psql on a node cluster, as its superuser, in its iceml database
sub npsql { return psql_on(@_) }

my %conninfo = eval { start_nodes(@nodes) } or BAIL_OUT("node clusters did not start: $@");

my $db = $IcemlTap::db = 'iceml_shard';
psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	CREATE EXTENSION postgres_fdw;
	DROP ROLE IF EXISTS iceml_tap_sam;
	CREATE ROLE iceml_tap_sam LOGIN IN ROLE iceml_user;
});
my %sam = (user => 'iceml_tap_sam');

# ---- nodes -----------------------------------------------------------------
is(psql("SELECT iceml.add_node('a', '$conninfo{shard_a}'); SELECT iceml.add_node('b', '$conninfo{shard_b}');"),
	"a\nb", 'two node clusters added');
is(psql(q{SELECT string_agg(name || ':' || iceml_version, ' ' ORDER BY name) FROM iceml.nodes}),
	'a:0.1.0 b:0.1.0', 'iceml.nodes lists them with the iceml version found there');

# ---- a sharded feature group -----------------------------------------------
my $features = q{'[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]'};
my $rules = q{'[{"name":"label","features":["is_iceberg"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"ERROR","max":1}]},{"name":"shape","features":["band_1","band_2"],"rules":[{"name":"HAS_LENGTH","level":"ERROR","value":5625}]},{"name":"angle","features":["inc_angle"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":60}]}]'};
is(psql("SELECT iceml.create_feature_group('chips', $features, ARRAY['id'], expectations => $rules, nodes => ARRAY['a', 'b'])", %sam),
	'iceml_fs.chips_1', 'sharded group created by an iceml_user');
is(psql("SELECT iceml.create_feature_group('flat', $features, ARRAY['id'], expectations => $rules)", %sam),
	'iceml_fs.flat_1', 'its one-server twin');
for my $n (@nodes) {
	is(npsql($n, q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'iceml_fs.chips_1'::regclass AND NOT tgisinternal}),
		'4', "$n holds a real feature group with its expectation triggers");
}

# INSERT, COPY and ingest_statoil through the coordinator
psql(q{INSERT INTO iceml_fs.chips_1 SELECT id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(60, 3)}, %sam);
my $copyfile = "/tmp/iceml_shard_$$.copy";
psql(qq{COPY (SELECT 'k' || id, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(20, 4)) TO '$copyfile';
        COPY iceml_fs.chips_1 FROM '$copyfile';});
my $doc = q{(SELECT json_agg(json_build_object('id', 'd' || id, 'band_1', band_1, 'band_2', band_2,
             'inc_angle', inc_angle, 'is_iceberg', is_iceberg))::text FROM iceml.synthesize_statoil(30, 5))};
is(psql("SELECT inserted FROM iceml.ingest_statoil('iceml_fs.chips_1', document => $doc)", %sam),
	'30', 'ingest_statoil through the coordinator');
is(psql("SELECT inserted FROM iceml.ingest_statoil('iceml_fs.chips_1', path => '$repo/test/data/statoil_small.json')"),
	'4', 'ingest_statoil of a server file through the coordinator');
is(psql('SELECT count(*) FROM iceml_fs.chips_1', %sam), '114', 'every row readable through the coordinator');
my ($ra, $rb) = (scalar npsql('shard_a', 'SELECT count(*) FROM iceml_fs.chips_1'), scalar npsql('shard_b', 'SELECT count(*) FROM iceml_fs.chips_1'));
ok($ra > 20 && $rb > 20 && $ra + $rb == 114, "rows spread over both nodes ($ra + $rb)");
is(psql(q{SELECT count(*) FROM iceml_fs.chips_1 t JOIN iceml.shards s ON s."partition" = t.tableoid
          WHERE satisfies_hash_partition('iceml_fs.chips_1'::regclass, 2, s.shard, t.id)}), '114',
	'each row is on the node its key hashes to');
ok(npsql('shard_a', q{SELECT count(*) FROM iceml.feature_group_commits c JOIN iceml.feature_groups g ON g.id = c.feature_group_id WHERE g.name = 'chips'}) > 0,
	'the node records its commits');
psql(q{INSERT INTO iceml_fs.flat_1 SELECT * FROM iceml_fs.chips_1}, %sam);

# a row refused by its node's expectations: refused with the node named, and
# nothing of the statement written on any node
my ($rc, $out) = psql(q{INSERT INTO iceml_fs.chips_1 SELECT 'x' || id, band_1, band_2, inc_angle, CASE WHEN id = (SELECT min(id) FROM iceml.synthesize_statoil(10, 8)) THEN 5 ELSE is_iceberg END FROM iceml.synthesize_statoil(10, 8)}, %sam);
like($out, qr/ERROR:  node "[ab]": feature group "chips_1" rejected a row: expectation "label" rule HAS_MAX/, 'INSERT: refused row names its node');
my $bad = q{(SELECT json_agg(json_build_object('id', 'q' || id, 'band_1', band_1, 'band_2', band_2,
             'inc_angle', CASE WHEN n = 4 THEN 75 ELSE inc_angle END, 'is_iceberg', is_iceberg))::text
             FROM (SELECT s.*, row_number() OVER () AS n FROM iceml.synthesize_statoil(10, 9) s) q)};
($rc, $out) = psql("SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', document => $bad)", %sam);
like($out, qr/node "[ab]": .*rejected a row: expectation "angle"/, 'ingest_statoil: refused record names its node');
is(psql('SELECT count(*) FROM iceml_fs.chips_1', %sam), '114', 'nothing of the refused statements was written');

# ---- statistics: merged from the nodes, equal to one server's --------------
is(psql(q{SELECT iceml.compute_statistics('iceml_fs.chips_1')}, %sam), '114', 'compute_statistics over the nodes');
psql(q{SELECT iceml.compute_statistics('iceml_fs.flat_1')}, %sam);
my $cmp = q{
	SELECT a.feature || '/' || a.kind || ':' ||
	       concat_ws(',', CASE WHEN a.count <> b.count THEN 'count' END,
	                      CASE WHEN a.completeness IS DISTINCT FROM b.completeness THEN 'completeness' END,
	                      CASE WHEN a.min IS DISTINCT FROM b.min OR a.max IS DISTINCT FROM b.max THEN 'range' END,
	                      CASE WHEN abs(a.mean - b.mean) > 1e-9 * greatest(abs(b.mean), 1) THEN 'mean' END,
	                      CASE WHEN abs(a.stddev - b.stddev) > 1e-9 * greatest(b.stddev, 1) THEN 'stddev' END,
	                      CASE WHEN a.approx_distinct <> b.approx_distinct THEN 'distinct' END,
	                      CASE WHEN (a.histogram IS NULL) <> (b.histogram IS NULL) THEN 'histogram' END,
	                      CASE WHEN a.histogram IS NOT NULL AND b.count <= 4096 AND a.histogram->'counts' <> b.histogram->'counts' THEN 'bins' END,
	                      CASE WHEN a.histogram IS NOT NULL AND (SELECT sum(x::bigint) FROM jsonb_array_elements_text(a.histogram->'counts') x)
	                                <> (SELECT sum(x::bigint) FROM jsonb_array_elements_text(b.histogram->'counts') x) THEN 'binsum' END)
	  FROM iceml.feature_statistics a JOIN iceml.feature_statistics b USING (feature, kind)
	 WHERE a.feature_group = 'iceml_fs.chips_1'::regclass AND b.feature_group = 'iceml_fs.flat_1'::regclass
	   AND a.computed_at = (SELECT max(computed_at) FROM iceml.feature_statistics WHERE feature_group = a.feature_group)
	   AND b.computed_at = (SELECT max(computed_at) FROM iceml.feature_statistics WHERE feature_group = b.feature_group)
	 ORDER BY a.id};
is(psql($cmp), join("\n", 'id/value:', 'band_1/elements:', 'band_1/row_means:', 'band_2/elements:', 'band_2/row_means:',
	'inc_angle/value:', 'is_iceberg/value:'),
	'sharded statistics equal one server\'s: counts, completeness, range, mean, stddev, distinct, histograms');
# over 4096 values one server's histogram shares a few fine bins between
# neighbours (src/featurestore/statistics.c); the merged one counts exactly
my $moved = psql(q{
	SELECT max(d) FROM (
	  SELECT (SELECT sum(abs(x.v::bigint - y.v::bigint)) FROM jsonb_array_elements_text(a.histogram->'counts') WITH ORDINALITY x(v, i)
	            JOIN jsonb_array_elements_text(b.histogram->'counts') WITH ORDINALITY y(v, i) USING (i))::float8 / a.count AS d
	    FROM iceml.feature_statistics a JOIN iceml.feature_statistics b USING (feature, kind)
	   WHERE a.feature_group = 'iceml_fs.chips_1'::regclass AND b.feature_group = 'iceml_fs.flat_1'::regclass
	     AND a.computed_at = (SELECT max(computed_at) FROM iceml.feature_statistics WHERE feature_group = a.feature_group)
	     AND b.computed_at = (SELECT max(computed_at) FROM iceml.feature_statistics WHERE feature_group = b.feature_group)
	     AND a.kind = 'elements') q});
ok($moved < 0.01, "band histograms over 4096 values differ from one server's by its documented binning only ($moved of the values)");
is(psql(q{SELECT count(DISTINCT (h->>'bins')) FROM (SELECT jsonb_build_object('bins', (SELECT sum(x::bigint) FROM jsonb_array_elements_text(histogram->'counts') x) = count) h
          FROM iceml.feature_statistics WHERE feature_group = 'iceml_fs.chips_1'::regclass AND histogram IS NOT NULL) q}),
	'1', 'merged histograms count every finite value once');

# ---- a training dataset from the sharded group: the same split as one server's
psql(q{SELECT iceml.create_training_dataset('cs', 'iceml_fs.chips_1', 'is_iceberg', seed => 7);
       SELECT iceml.create_training_dataset('cf', 'iceml_fs.flat_1', 'is_iceberg', seed => 7);}, %sam);
is(psql(q{SELECT count(*) FILTER (WHERE a.split IS DISTINCT FROM b.split) || '/' || count(*)
            FROM iceml_td.cs_1 a FULL JOIN iceml_td.cf_1 b USING (id)}, %sam),
	'0/114', 'a training dataset of the sharded group splits every row as one server does');

# ---- reads: both nodes at once, iceml's immutable functions shipped ---------
my $where = q{WHERE (iceml.band_avg(band_1, band_2))[1] > -20};
my $plan = psql("EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM iceml_fs.chips_1 $where", %sam);
is(scalar(() = $plan =~ /Async Foreign Scan/g), 2, 'the two shards are scanned concurrently (async append)');
is(scalar(() = $plan =~ /Remote SQL: SELECT id FROM iceml_fs\.chips_1 WHERE .*iceml\.band_avg\(band_1, band_2\)/g), 2,
	'the filter with an iceml function runs on the nodes') or diag($plan);
is(psql("SELECT count(*) FROM iceml_fs.chips_1 $where", %sam), psql("SELECT count(*) FROM iceml_fs.flat_1 $where", %sam),
	'and selects what one server selects');

# ---- predictions where the rows are -----------------------------------------
# a model of sam's (seeded weights, as the training worker stores one),
# deployed; iceml_predict over the sharded group runs on the nodes
my $model = q{
	WITH i AS (INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation,
	                          metrics, training_dataset, lineage, weights, owner)
	SELECT 'sp', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}',
	       '{"mean": [-20, -28, -24], "std": [4, 2, 3]}', '{"log_loss": 0.5}', NULL, '{}',
	       iceml._untrained_weights(a.spec::text, SEED, '{-20,-28,-24}', '{4,2,3}'), 'iceml_tap_sam'
	  FROM iceml.architectures a WHERE a.name = 'tiny_cnn' RETURNING id) SELECT id FROM i};
my ($m1, $m2) = map { my $q = $model; $q =~ s/SEED/$_/; scalar psql($q) } (1, 2);
my %hash = map { ($_ => scalar psql("SELECT iceml._model_content_hash(weights, channels) FROM iceml.models WHERE id = $_")) } ($m1, $m2);
is(psql("SELECT iceml.deploy('sp', ${m1}::bigint)", %sam), $m1, 'a model deployed on the coordinator');
my $scores = q{SELECT id, iceml_predict('sp', band_1, band_2, inc_angle) AS p FROM iceml_fs.TABLE};
(my $sharded = $scores) =~ s/TABLE/chips_1/;
(my $flat = $scores) =~ s/TABLE/flat_1/;
$plan = psql("EXPLAIN (VERBOSE, COSTS OFF) $sharded", %sam);
is(scalar(() = $plan =~ /Async Foreign Scan/g), 2, 'scoring the sharded group: both shards at once (async append)') or diag($plan);
is(scalar(() = $plan =~ /Remote SQL: SELECT id, min\(iceml\.predict_model\(\Q$m1\E::bigint, E'\\\\x$hash{$m1}'::bytea, band_1, band_2, inc_angle\)\) FROM iceml_fs\.chips_1 GROUP BY 1/g), 2,
	'the remote SQL runs the deployed model (by id and content hash) on each node') or diag($plan);
for my $n (@nodes) {
	is(npsql($n, q{SELECT string_agg(content_hash || ':' || model_id, ' ') FROM iceml.shipped_models}), "$hash{$m1}:$m1",
		"the model was copied to $n under its content hash");
}
my $same = "SELECT count(*) FILTER (WHERE s.p = f.p) || '/' || count(*) FROM ($sharded) s FULL JOIN ($flat) f USING (id)";
is(psql($same, %sam), '114/114', 'predictions from the sharded group equal one server\'s, row by row');
# calls predicted on the nodes are logged there (each server's own
# iceml.log_inferences) and collected into the coordinator's log under the
# deployment, exactly once; iceml.monitor sees them as on one server
for my $n (@nodes) {
	npsql($n, q{ALTER SYSTEM SET iceml.log_inferences = 1; SELECT pg_reload_conf();});
}
is(psql("SELECT count(p) FROM ($sharded) s", %sam), '114', 'scoring with logging on the nodes');
is(poll_nodes(q{SELECT count(*) FROM iceml.inference_log WHERE name IS NULL}, 114, 30), 114,
	'the nodes logged their 114 calls, under the coordinator\'s model id') ;
is(psql('SELECT iceml.collect_inferences()', %sam), '114', 'collect_inferences brings them to the coordinator');
is(psql(qq{SELECT count(*) FILTER (WHERE l.name = 'sp' AND l.model_id = $m1
	                                   AND l.deployment_id = (SELECT max(id) FROM iceml.deployments WHERE name = 'sp')
	                                   AND l.band_1_mean < 0 AND l.latency_ms >= 0)
	         FROM iceml.inference_log l}), '114', 'each under the deployment that served it, with its input summaries');
is(psql(qq{SELECT round(sum(l.prediction)::numeric, 3) = (SELECT round(sum(p)::numeric, 3) FROM ($flat) f) FROM iceml.inference_log l WHERE l.name = 'sp'}, %sam),
	't', 'the logged predictions are the predictions');
is(psql(q{SELECT iceml.monitor('sp', min_samples => 10)->>'calls'}, %sam), '114', 'iceml.monitor counts them as on one server');
is(psql('SELECT iceml.collect_inferences()', %sam), '0', 'collected once: nothing new');
is(poll_nodes(q{SELECT count(*) FROM iceml.inference_log}, 0, 5), 0, 'and the nodes let go of what the coordinator has');
for my $n (@nodes) {
	npsql($n, q{ALTER SYSTEM RESET iceml.log_inferences; SELECT pg_reload_conf();});
}

my $filter = q{SELECT count(*) FROM iceml_fs.TABLE WHERE iceml_predict('sp', band_1, band_2) > 0.2};
(my $fs = $filter) =~ s/TABLE/chips_1/;
(my $ff = $filter) =~ s/TABLE/flat_1/;
like(psql("EXPLAIN (VERBOSE, COSTS OFF) $fs", %sam), qr/Remote SQL: SELECT NULL FROM iceml_fs\.chips_1 WHERE \(\(iceml\.predict_model\(/,
	'a WHERE clause that predicts runs on the nodes');
is(psql($fs, %sam), psql($ff, %sam), 'and selects what one server selects');

# a deployment on the coordinator is what the nodes use from the next
# statement on: never a rolled-back or stale one, prepared statements too
my $agg = "SELECT string_agg(id || '=' || p, ',' ORDER BY id) FROM (%s) q";
my ($want1, $want2) = map { scalar psql(sprintf($agg, "SELECT id, iceml_predict($_, band_1, band_2, inc_angle) AS p FROM iceml_fs.flat_1"), %sam) } ($m1, $m2);
isnt($want1, $want2, 'the two models predict differently');
my $seq = psql(sprintf("PREPARE s AS $agg;", $sharded) . qq{
	EXECUTE s; EXECUTE s; EXECUTE s; EXECUTE s; EXECUTE s; EXECUTE s;
	BEGIN; SELECT NULL FROM iceml.deploy('sp', ${m2}::bigint); ROLLBACK;
	EXECUTE s;
	SELECT NULL FROM iceml.deploy('sp', ${m2}::bigint);
	EXECUTE s;
	SELECT NULL FROM iceml.deploy('sp', 'rollback');
	EXECUTE s;}, %sam);
my @got = grep { $_ ne '' } split /\n/, $seq;
is(scalar(@got), 9, 'nine executions of a prepared scoring statement');
is_deeply([@got[0 .. 5]], [($want1) x 6], 'model 1 while it is deployed (the generic plan too)');
is($got[6], $want1, 'a rolled-back deploy changes nothing');
is($got[7], $want2, 'a committed deploy: the next execution predicts with the new model on the nodes');
is($got[8], $want1, 'and a rollback deploy brings the first back');
# copies of models no deployment names any more go when the next model is
# shipped: m1's when m2 came, m2's when the rollback brought m1 back
for my $n (@nodes) {
	is(npsql($n, q{SELECT string_agg(model_id::text, ',') FROM iceml.shipped_models}), $m1,
		"$n holds the deployed model's copy only: the replaced one's was removed");
}
# iceml.shard_predict = off: the coordinator fetches the bands and predicts
like(psql("SET iceml.shard_predict = off; EXPLAIN (VERBOSE, COSTS OFF) $sharded", %sam),
	qr/Output: chips_1_1\.id, iceml_predict\('sp'::text.*Remote SQL: SELECT id, band_1, band_2, inc_angle FROM iceml_fs\.chips_1$/ms,
	'iceml.shard_predict = off predicts on the coordinator');

# a node that stops and comes back under one session: the statement while
# it is down fails naming the node, writes nothing; the next one connects again
my $script = "/tmp/iceml_shard_predict_$$.sql";
open(my $sf, '>', $script) or die;
print $sf "SELECT count(p) FROM ($sharded) s;\n\\! $cluster stop shard_b >/dev/null\n",
	"SELECT count(p) FROM ($sharded) s;\n\\! $cluster start shard_b >/dev/null\n",
	"SELECT count(p) FROM ($sharded) s;\n";
close $sf;
my $models = psql('SELECT count(*) FROM iceml.models');
my $restarted = `psql -XAtq -U iceml_tap_sam -d $db -f $script 2>&1`;
like($restarted, qr/^114\n.*ERROR:  could not connect to node "b".*\n114$/s,
	'scoring while a node is down names the node; after its restart the same session scores again') or diag($restarted);
is(psql('SELECT count(*) FROM iceml.models'), $models, 'and nothing was written on the coordinator');
unlink $script;

# ---- a node that goes away --------------------------------------------------
my $stats = psql('SELECT count(*) FROM iceml.feature_statistics');
my $before_a = scalar npsql('shard_a', 'SELECT count(*) FROM iceml_fs.chips_1');
# mid-statement: a slow INSERT through the coordinator while node b stops
my $env = `$cluster env test`;
my $slow = q{INSERT INTO iceml_fs.chips_1 SELECT 's' || id || pg_sleep(0.05)::text, band_1, band_2, inc_angle, is_iceberg FROM iceml.synthesize_statoil(200, 12)};
my $outfile = "/tmp/iceml_shard_slow_$$.out";
system("psql -XAtq -U iceml_tap_sam -d $db -c \"$slow\" >$outfile 2>&1 &");
poll(q{SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'INSERT INTO iceml_fs.chips_1 SELECT ''s''%'}, qr/^1$/, 30);
sleep 2;
system("$cluster stop shard_b >/dev/null");
my $done = poll(q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO iceml_fs.chips_1 SELECT ''s''%' AND state = 'active'}, qr/^0$/, 60);
my $slowout = do { local $/; open my $fh, '<', $outfile or die; <$fh> };
like($slowout, qr/ERROR:.*(iceml_node_b|server closed|terminat)/s, 'the statement fails when its node stops mid-statement');
is(npsql('shard_a', 'SELECT count(*) FROM iceml_fs.chips_1'), $before_a, 'nothing of it remains on the node still up');
# while it is down
($rc, $out) = psql('SELECT count(*) FROM iceml_fs.chips_1', %sam);
like($out, qr/could not connect to server "iceml_node_b"/, 'reads name the node that is down');
($rc, $out) = psql(q{SELECT iceml.compute_statistics('iceml_fs.chips_1')}, %sam);
like($out, qr/could not connect to node "b"/, 'compute_statistics names the node that is down');
is(psql('SELECT count(*) FROM iceml.feature_statistics'), $stats, 'and writes no statistics');
($rc, $out) = psql(q{SELECT iceml.drop_feature_group('iceml_fs.chips_1', cascade => true)}, %sam);
like($out, qr/could not connect to node "b"/, 'drop_feature_group names the node that is down');
is(psql(q{SELECT count(*) FROM iceml.feature_groups WHERE name = 'chips'}), '1', 'and drops nothing');
is(npsql('shard_a', q{SELECT count(*) FROM iceml.feature_groups WHERE name = 'chips'}), '1', 'not even on the node that is up');
# back
system("$cluster start shard_b >/dev/null") == 0 or BAIL_OUT('node b did not restart');
is(psql('SELECT count(*) FROM iceml_fs.chips_1', %sam), '114', 'the node is back: all rows');
is(psql(q{SELECT iceml.compute_statistics('iceml_fs.chips_1')}, %sam), '114', 'statistics again (a new connection)');

# ---- copies no deployment needs: cleanup_shipped_models, drop_node -----------
psql("SELECT NULL FROM iceml.deploy('sp', ${m2}::bigint)", %sam);
($rc, $out) = psql(q{SELECT iceml.cleanup_shipped_models()}, %sam);
like($out, qr/permission denied for function cleanup_shipped_models/, 'cleanup_shipped_models is iceml_admin\'s');
is(psql(q{SELECT iceml.cleanup_shipped_models('b')}), '1', 'cleanup_shipped_models(node): the replaced model\'s copy on that node');
is(psql(q{SELECT iceml.cleanup_shipped_models()}), '1', 'cleanup_shipped_models(): the other node\'s');
is(psql(q{SELECT iceml.cleanup_shipped_models()}), '0', 'and nothing more');
for my $n (@nodes) {
	is(npsql($n, q{SELECT count(*) FROM iceml.shipped_models}), '0', "$n holds no copy no deployment needs");
}
is(psql("SELECT count(p) FROM ($sharded) s", %sam), '114', 'the next prediction copies the deployed model again');
for my $n (@nodes) {
	is(npsql($n, q{SELECT string_agg(model_id::text, ',') FROM iceml.shipped_models}), $m2, "$n holds the deployed model");
}

# ---- cleanup -----------------------------------------------------------------
psql(q{SELECT iceml.drop_feature_group('iceml_fs.chips_1', cascade => true)}, %sam);
for my $n (@nodes) {
	is(npsql($n, q{SELECT count(*) FROM iceml.feature_groups WHERE name = 'chips'}), '0', "drop_feature_group dropped the group on $n");
}
is(psql(q{SELECT iceml.drop_node('a'); SELECT iceml.drop_node('b'); SELECT count(*) FROM iceml.nodes}), "\n\n0", 'nodes dropped');
for my $n (@nodes) {
	is(npsql($n, q{SELECT count(*) FROM iceml.shipped_models}), '0', "drop_node removed the coordinator's model copies from $n");
}
unlink $copyfile, $outfile;
system("$cluster stop @nodes >/dev/null");
done_testing();

# the sum of a count over the node clusters, polled until it is want
sub poll_nodes {
	my ($sql, $want, $secs) = @_;
	my $got = -1;
	for (1 .. $secs * 5) {
		$got = 0;
		$got += npsql($_, $sql) for @nodes;
		return $got if $got == $want;
		select(undef, undef, undef, 0.2);
	}
	return $got;
}
