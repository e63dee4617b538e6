# A backend SIGKILLed in the middle of ingest_statoil (COPY well under way,
# rows already written to the heap) leaves nothing half-written: after the
# crash restart the feature group has none of the load's rows, no commit row
# and no quarantine rows; its catalog row, triggers and unique index are
# intact, and the same load then succeeds whole.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_ingest_kill';
my $n = 2000;

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'],
	       expectations => '[{"name":"angle","features":["inc_angle"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":50}]}]');
});

# n valid records, JSON lines, readable by the server
my $dir = tempdir('iceml_kill_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $file = "$dir/many.jsonl";
open(my $fh, '>', $file) or die;
my $band = join(',', ('-21.5') x 5625);
printf $fh "{\"id\":\"k%05d\",\"band_1\":[%s],\"band_2\":[%s],\"inc_angle\":40.5,\"is_iceberg\":%d}\n",
	$_, $band, $band, $_ % 2 for 1 .. $n;
close $fh;
chmod 0644, $file;

for my $mode ('abort', 'quarantine') {
	# the load, in the background, in its own session
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		# its connection is killed: keep psql's complaint out of the report
		open(STDERR, '>', '/dev/null');
		exec('psql', '-XAtq', '-d', $db, '-c',
			"SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', '$file', '$mode')");
	}
	# wait until COPY has written a good part of the rows, then SIGKILL
	my $backend = poll(q{SELECT p.pid FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid)
	                      WHERE a.query LIKE '%ingest_statoil%' AND p.tuples_processed >= 200}, qr/^\d+$/, 120);
	like($backend, qr/^\d+$/, "$mode: the load is under way (200 rows copied)");
	ok(kill('KILL', $backend), "$mode: its backend is SIGKILLed") if $backend =~ /^\d+$/;
	waitpid($pid, 0);
	isnt($? >> 8, 0, "$mode: the client sees its connection die");

	# the postmaster reinitialises after the crash
	is(poll('SELECT 1', qr/^1$/, 120), '1', "$mode: the server is back");
	is(psql('SELECT count(*) FROM iceml_fs.chips_1'), '0', "$mode: none of the load's rows are there");
	is(psql(q{SELECT count(*) FROM iceml.feature_group_commits WHERE feature_group = 'iceml_fs.chips_1'::regclass}),
		'0', "$mode: no commit row");
	is(psql(q{SELECT count(*) FROM iceml.quarantine WHERE feature_group = 'iceml_fs.chips_1'::regclass}),
		'0', "$mode: no quarantine row");
	is(psql(q{SELECT name || ' ' || version || ' ' || (expectations->0->>'name') FROM iceml.feature_groups WHERE name = 'chips'}),
		'chips 1 angle', "$mode: the catalog row is intact");
}

# the group still works: the same load succeeds whole, expectations enforce
is(scalar psql("SELECT read, inserted, quarantined FROM iceml.ingest_statoil('iceml_fs.chips_1', '$file')"),
	"$n|$n|0", 'after the crashes the load succeeds whole');
is(psql(q{SELECT count(*) || ' ' || count(DISTINCT id) FROM iceml_fs.chips_1}), "$n $n", 'every row once');
my ($rc, $out) = psql(q{INSERT INTO iceml_fs.chips_1 VALUES ('k00001', '{1}', '{1}', 10, 0)});
like($out, qr/duplicate key value/, 'the primary key still enforces');
($rc, $out) = psql(q{INSERT INTO iceml_fs.chips_1 VALUES ('x', '{1}', '{1}', 75, 0)});
like($out, qr/expectation "angle"/, 'the expectations still enforce');

psql("DROP DATABASE $db", db => 'postgres');
done_testing();
