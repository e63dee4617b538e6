# Resource limits seen from a training worker: the worker checks
# iceml.train_memory_mb again before it allocates (the settings it runs with
# may differ from the caller's), and a run it refuses ends failed with the
# reason, the cluster untouched.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_limits_tap';

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
	INSERT INTO iceml_fs.chips_1 SELECT i, array_fill((-20 + i % 3)::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]), (i % 2)::smallint
	  FROM generate_series(1, 40) i;
	SELECT iceml.create_training_dataset('chips', 'iceml_fs.chips_1', 'is_iceberg');
});

# the worker connects to this database: it runs with 256 MB, while the
# session that queues the run allows the default 4 GB
psql("ALTER DATABASE $db SET iceml.train_memory_mb = 256", db => 'postgres');
my ($rc, $run) = psql(q{SET iceml.train_memory_mb = 4096;
	SELECT iceml.train('big_batch', 'iceml_td.chips_1', 'statoil_cnn', '{"epochs": 1, "batch_size": 32}')});
is($rc, 0, 'the caller\'s limit lets the run be queued') or diag($run);
is(psql("SELECT iceml.wait($run, '120 s')"), 'failed', 'the worker refuses it');
like(psql("SELECT error FROM iceml.runs WHERE id = $run"),
	qr/^training the architecture of run $run with batch_size 32 needs about \d+ MB, more than iceml\.train_memory_mb allows \(256 MB\) \(SQLSTATE 53200\) DETAIL: The model takes \d+ MB; .* HINT: Lower batch_size/,
	'with the figure and the limit (a killed worker would say it ended without finishing)');
is(psql("SELECT count(*) FROM iceml.run_metrics WHERE run_id = $run"), '0', 'before any epoch');

# the same session setting in the database: the run trains
psql("ALTER DATABASE $db SET iceml.train_memory_mb = 4096", db => 'postgres');
$run = psql(q{SELECT iceml.train('big_batch', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 8}')});
is(psql("SELECT iceml.wait($run, '120 s')"), 'succeeded', 'within the limit it trains');

# An allocation the engine cannot make fails the run with 53200, and the
# cluster goes on.  With the limits raised to their maximum, a batch of
# 65536 chips asks for about 700 GB at once: only where the kernel refuses an
# allocation that large outright (overcommit heuristic or strict, and less
# memory than that); elsewhere it could be granted and then touched.
my $overcommit = `cat /proc/sys/vm/overcommit_memory 2>/dev/null` // '';
my ($ram) = (`cat /proc/meminfo 2>/dev/null` // '') =~ /MemTotal:\s+(\d+) kB/;
my ($swap) = (`cat /proc/meminfo 2>/dev/null` // '') =~ /SwapTotal:\s+(\d+) kB/;
SKIP: {
	skip 'the kernel might grant a 700 GB allocation here', 4
		unless $overcommit =~ /^[02]$/ && defined $ram && ($ram + ($swap // 0)) < 300 * 1024 * 1024;
	my $log = $ENV{ICEML_CLUSTER_LOG} // '';
	my $mark = -s $log // 0;
	psql("ALTER DATABASE $db SET iceml.train_memory_mb = '1TB'", db => 'postgres');
	$run = psql(q{SET iceml.train_memory_mb = '1TB';
		SELECT iceml.train('oom', 'iceml_td.chips_1', 'statoil_cnn', '{"epochs": 1, "batch_size": 65536}')});
	is(psql("SELECT iceml.wait($run, '120 s')"), 'failed', 'a run the engine cannot allocate fails');
	like(psql("SELECT error FROM iceml.runs WHERE id = $run"),
		qr/^cannot train run $run: out of memory for the training plan \(batch 65536\) \(SQLSTATE 53200\)/,
		'out of memory, 53200, from the worker itself');
	my $other = psql(q{SELECT iceml.train('after_oom', 'iceml_td.chips_1', 'tiny_cnn', '{"epochs": 1, "batch_size": 8}')});
	is(psql("SELECT iceml.wait($other, '120 s')"), 'succeeded', 'the next run trains');
	my $since = '';
	if (open(my $fh, '<', $log)) {
		seek($fh, $mark, 0);
		local $/;
		$since = <$fh> // '';
		close $fh;
	}
	unlike($since, qr/terminated by signal|reinitializing|out of memory: kill/i, 'no process was killed, no crash restart');
}

psql("DROP DATABASE $db", db => 'postgres');
done_testing();
