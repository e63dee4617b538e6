# iceml_predict and deployments seen from several sessions, with models
# trained by real workers:
#   - training deploys automatically: "deploy" if_better (the default), always, never;
#   - a deploy committed in another session is used by this session's next
#     statement; a rolled-back one changes nothing; a deployed model cannot
#     be deleted; warm calls neither load nor query.
use strict;
use warnings;
use IPC::Open2;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_predict_tap';

# A session that stays open: one statement at a time, its output back.
package Session {
	sub new {
		my ($class, $db) = @_;
		my ($out, $in);
		my $pid = IPC::Open2::open2($out, $in, "psql -XAtq -d $db 2>/dev/null");
		my $self = bless { out => $out, in => $in, pid => $pid }, $class;
		$self->run('SET client_min_messages = warning');
		return $self;
	}
	sub run {
		my ($self, $sql) = @_;
		my $in = $self->{in};
		print $in "$sql;\n\\echo __done__\n";
		$in->flush;
		my @lines;
		my $out = $self->{out};
		while (my $l = <$out>) {
			chomp $l;
			last if $l eq '__done__';
			push @lines, $l;
		}
		return join("\n", @lines);
	}
	sub close {
		my ($self) = @_;
		close $self->{in};
		waitpid($self->{pid}, 0);
	}
}

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	DROP ROLE IF EXISTS iceml_tap_dora;
	CREATE ROLE iceml_tap_dora LOGIN IN ROLE iceml_user;
});
psql(q{
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	SELECT setseed(0.42);
	INSERT INTO iceml_fs.chips_1
	SELECT i, (SELECT array_agg(CASE WHEN i % 2 = 1 AND (j - 1) / 75 BETWEEN 33 AND 41 AND (j - 1) % 75 BETWEEN 33 AND 41
	                                 THEN -6 + random()::real * 4 ELSE -24 + random()::real * 3 END) FROM generate_series(1, 5625) j),
	          (SELECT array_agg(-29 + random()::real * 2) FROM generate_series(1, 5625) j),
	          (i % 2)::smallint
	  FROM generate_series(1, 120) i;
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg', seed => 1);
}, user => 'iceml_tap_dora');

sub train {
	my ($hp) = @_;
	my $run = psql("SELECT iceml.train('tap', 'iceml_td.chips_1', 'tiny_cnn', '$hp')", user => 'iceml_tap_dora');
	my $st = psql("SELECT iceml.wait($run, '180 s')", user => 'iceml_tap_dora');
	my $model = psql("SELECT model_id FROM iceml.runs WHERE id = $run");
	return ($run, $st, $model);
}
sub deployed { psql(q{SELECT model_id FROM iceml.deployed_models WHERE name = 'tap'}) }
sub loss { my ($m) = @_; psql("SELECT metrics->>'log_loss' FROM iceml.models WHERE id = $m") }

# ---- automatic deployment -------------------------------------------------
my ($r1, $s1, $m1) = train('{"epochs": 2, "batch_size": 16, "seed": 1}');
is($s1, 'succeeded', 'first run');
is(deployed(), $m1, 'if_better (the default): the first model is deployed, nothing was');
is(psql("SELECT strategy || ' ' || deployed_by || ' ' || coalesce(from_model_id::text, '-') FROM iceml.deployments ORDER BY id DESC LIMIT 1"),
	'if_better iceml_tap_dora -', 'recorded as if_better, by the run\'s owner');
my ($r2, $s2, $m2) = train('{"epochs": 1, "batch_size": 16, "seed": 2, "deploy": "never"}');
is(deployed(), $m1, 'deploy never: not deployed');
my ($r3, $s3, $m3) = train('{"epochs": 6, "batch_size": 16, "seed": 3}');
my $better = loss($m3) < loss($m1);
is(deployed(), $better ? $m3 : $m1, 'if_better: deployed exactly when its validation log loss is lower (' . loss($m3) . ' vs ' . loss($m1) . ')');
my $before_always = deployed();
my ($r4, $s4, $m4) = train('{"epochs": 1, "batch_size": 16, "seed": 4, "deploy": "always"}');
is(deployed(), $m4, 'deploy always: deployed');
my ($rc, $out) = psql(q{SELECT iceml.train('tap', 'iceml_td.chips_1', 'tiny_cnn', '{"deploy": "sometimes"}')}, user => 'iceml_tap_dora');
like($out, qr/hyperparameter "deploy" must be "if_better", "always" or "never"/, 'a bad "deploy" is refused');

# ---- other sessions -------------------------------------------------------------
my $a = Session->new($db);
my $q = q{SELECT round(iceml_predict('tap', band_1, band_2)::numeric, 6) FROM iceml_fs.chips_1 WHERE id = 1};
my $by_id = sub { psql("SELECT round(iceml_predict($_[0], band_1, band_2)::numeric, 6) FROM iceml_fs.chips_1 WHERE id = 1") };
is($a->run($q), $by_id->($m4), 'session A predicts with the deployed model');
$a->run($q) for 1 .. 3;
is($a->run(q{SELECT loads || ' ' || checks FROM iceml.predict_cache() WHERE key = 'tap'}), '1 1',
	'warm calls: one load, one check, whatever the number of statements');

psql("SELECT iceml.deploy('tap', $m2)");
is($a->run($q), $by_id->($m2), 'a deploy committed in session B: A\'s next statement uses it');
is($a->run(q{SELECT loads || ' ' || checks FROM iceml.predict_cache() WHERE key = 'tap'}), '2 2', 'after one reload');

psql("BEGIN; SELECT iceml.deploy('tap', $m3); SELECT pg_sleep(0.2); ROLLBACK;");
is($a->run($q), $by_id->($m2), 'a rolled-back deploy in B changes nothing in A');
is($a->run(q{SELECT loads FROM iceml.predict_cache() WHERE key = 'tap'}), '2', 'and A did not reload');

# a long transaction in A sees the new deployment at its next statement (READ COMMITTED)
$a->run('BEGIN');
is($a->run($q), $by_id->($m2), 'A in a transaction');
psql("SELECT iceml.deploy('tap', $m1)");
is($a->run($q), $by_id->($m1), 'its next statement uses the deploy B committed meanwhile');
$a->run('COMMIT');
# the same for a statement that reads no table (predict over constants)
my $qc = q{SELECT round(iceml_predict('tap', array_fill(-20::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]))::numeric, 6)};
my $qc_by_id = sub { psql("SELECT round(iceml_predict($_[0], array_fill(-20::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]))::numeric, 6)") };
$a->run('BEGIN');
is($a->run($qc), $qc_by_id->($m1), 'A in a transaction, predicting over constants');
psql("SELECT iceml.deploy('tap', $m2)");
is($a->run($qc), $qc_by_id->($m2), 'its next statement, which opens no table, uses the deploy B committed meanwhile');
$a->run('COMMIT');
psql("SELECT iceml.deploy('tap', $m1)");
# under REPEATABLE READ the transaction keeps its snapshot's deployment
$a->run('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($a->run($q), $by_id->($m1), 'A in a REPEATABLE READ transaction');
psql("SELECT iceml.deploy('tap', $m4)");
is($a->run($q), $by_id->($m1), 'keeps the deployment of its snapshot');
$a->run('COMMIT');
is($a->run($q), $by_id->($m4), 'and uses the new one after');

my (undef, $del) = psql("DELETE FROM iceml.models WHERE id = $m4");
like($del, qr/violates foreign key constraint "deployments_model_id_fkey"/, 'a deployed model cannot be deleted');
is($a->run($q), $by_id->($m4), 'A still uses it');
is(psql("SELECT iceml.deploy('tap', 'rollback')"), $m1, 'rollback to the model before it');
is($a->run($q), $by_id->($m1), 'A follows');

# ---- ensembles and test-time augmentation, from another session -----------------
my $is_mean = qq{SELECT abs(iceml_predict('tap', band_1, band_2)
                    - (iceml_predict($m1, band_1, band_2)::float8 + iceml_predict($m3, band_1, band_2)) / 2) < 1e-6
                   FROM iceml_fs.chips_1 WHERE id = 1};
ok(psql("SELECT iceml.deploy_ensemble('tap', ARRAY[$m1, $m3])") > 0, 'B deploys an ensemble of two models');
is($a->run($is_mean), 't', 'A\'s next statement predicts the mean of the members');
my $plain = $a->run($q);
my $loads = $a->run(q{SELECT loads FROM iceml.predict_cache() WHERE key = 'tap'});
psql("SELECT iceml.deploy_ensemble('tap', ARRAY[$m1, $m3], tta => true)");
isnt($a->run($q), $plain, 'B turns test-time augmentation on: A\'s prediction changes');
is($a->run(q{SELECT loads FROM iceml.predict_cache() WHERE key = 'tap'}), $loads + 1, 'after one reload');
my (undef, $del2) = psql("DELETE FROM iceml.models WHERE id = $m3");
# (m3 may have been deployed alone before, whose foreign key then answers first)
like($del2, qr/violates foreign key constraint "deployment(_member)?s_model_id_fkey"/, 'a member cannot be deleted');
# a run's if_better deploy replaces an ensemble only when it beats every member, and keeps tta
my ($r5, $s5, $m5) = train('{"epochs": 2, "batch_size": 16, "seed": 5}');
my $beats = loss($m5) < loss($m1) && loss($m5) < loss($m3);
is(psql(q{SELECT strategy || ' ' || tta FROM iceml.deployed_models WHERE name = 'tap'}),
	$beats ? 'if_better true' : 'ensemble true',
	'if_better against an ensemble: ' . ($beats ? 'beats' : 'does not beat') . ' every member (' . loss($m5) . ' vs ' . loss($m1) . ', ' . loss($m3) . ')');
$a->close;

psql("DROP DATABASE $db", db => 'postgres');
psql("DROP ROLE iceml_tap_dora", db => 'postgres');
done_testing();
