# ingest_statoil can always be stopped, and never holds up other sessions:
#   - devices, FIFOs and directories are refused at once (a FIFO is not
#     even opened for long: O_NONBLOCK);
#   - a record without end (a sparse terabyte of NUL bytes, in both layouts)
#     is refused after 16 MB instead of being skipped forever;
#   - cancel, statement_timeout and terminate stop a long input (a gigabyte
#     of blanks) with or without the parse thread, and afterwards DROP
#     DATABASE in another session is not blocked (its barrier is absorbed);
#   - two quarantine loads of the same ids: the second waits for the first
#     and quarantines the duplicates instead of dying of a unique violation.
# Every psql call runs under timeout(1), so that a hang fails the test
# instead of hanging the suite.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IPC::Open2;
use POSIX qw(mkfifo);
use FindBin;
use lib "$FindBin::Bin/lib";
use IcemlTap;

my $db = $IcemlTap::db = 'iceml_ingest_stop';
my $limit = 120;				# seconds before a call counts as hung

# A session that stays open; statements are sent and their output (errors
# included) collected later, so that another session can act meanwhile.
package Session {
	sub new {
		my ($class, $db) = @_;
		my ($out, $in);
		my $pid = IPC::Open2::open2($out, $in, "timeout $limit psql -XAtq -d $db 2>&1");
		my $self = bless { out => $out, in => $in, pid => $pid }, $class;
		$self->run('SET client_min_messages = warning');
		$self->{backend} = $self->run('SELECT pg_backend_pid()');
		return $self;
	}
	sub send {
		my ($self, $sql) = @_;
		my $in = $self->{in};
		print $in "$sql;\n\\echo __done__\n";
		$in->flush;
	}
	sub result {
		my ($self) = @_;
		my @lines;
		my $out = $self->{out};
		while (my $l = <$out>) {
			chomp $l;
			last if $l eq '__done__';
			push @lines, $l;
		}
		return join("\n", @lines);
	}
	sub run { my ($self, $sql) = @_; $self->send($sql); return $self->result; }
	sub close {
		my ($self) = @_;
		close $self->{in};
		waitpid($self->{pid}, 0);
	}
}

# psql under a time limit: (exit status, output with errors)
sub psql_t {
	my ($sql, $dbname) = @_;
	$dbname //= $db;
	my $out = `timeout $limit psql -XAtq -d $dbname -c "SET client_min_messages = warning" -c "$sql" 2>&1`;
	my $rc = $? >> 8;
	chomp $out;
	return ($rc, $out);
}

psql("DROP DATABASE IF EXISTS $db", db => 'postgres');
psql("CREATE DATABASE $db", db => 'postgres');
psql(q{
	CREATE EXTENSION iceml;
	SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
});

# the server (user postgres when the tests run as root) reads these
my $dir = tempdir('iceml_ingest_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

# ---- non-regular files ---------------------------------------------------
my $fifo = "$dir/fifo.json";
mkfifo($fifo, 0666) or die "mkfifo: $!";
chmod 0666, $fifo;
for my $path ($fifo, '/dev/zero', $dir) {
	my ($rc, $out) = psql_t("SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', '$path')");
	like($out, qr/ERROR:  "\Q$path\E" is not a regular file/, "$path is refused");
	like($out, qr/DETAIL:  It is a (FIFO|character device|directory)/, "$path: the error says what it is");
}

# ---- records without end ---------------------------------------------------
my $sparse = "$dir/zeros.jsonl";
open(my $fh, '>', $sparse) or die; close $fh;
truncate($sparse, 1 << 40) or die "truncate: $!";
my $sparse_array = "$dir/zeros.json";
open($fh, '>', $sparse_array) or die; print $fh '['; close $fh;
truncate($sparse_array, 1 << 40) or die "truncate: $!";
chmod 0644, $sparse, $sparse_array;
for my $case ([$sparse, 'abort'], [$sparse_array, 'quarantine']) {
	my ($path, $mode) = @$case;
	my ($rc, $out) = psql_t("SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', '$path', '$mode')");
	like($out, qr/ERROR:  malformed Statoil input at byte \d+: record 0 is larger than 16777216 bytes/,
		"a terabyte of NUL bytes ($mode) is refused after 16 MB");
}

# ---- cancel, timeout, terminate on a long input ----------------------------
my $blanks = "$dir/blanks.jsonl";
system("head -c 1G /dev/zero | tr '\\0' ' ' > $blanks") == 0 or die "cannot write $blanks";
chmod 0644, $blanks;
my $ingest = "SELECT * FROM iceml.ingest_statoil('iceml_fs.chips_1', '$blanks')";

# wait until the session's backend runs the ingest
sub running {
	my ($pid) = @_;
	return poll("SELECT state = 'active' AND query LIKE '%ingest_statoil%' FROM pg_stat_activity WHERE pid = $pid",
				qr/^t$/, 60) eq 't';
}

for my $thread ('on', 'off') {
	my $s = Session->new($db);
	$s->run("SET iceml.ingest_parse_thread = $thread");

	$s->send($ingest);
	ok(running($s->{backend}), "parse thread $thread: the ingest runs");
	psql("SELECT pg_cancel_backend($s->{backend})");
	like($s->result, qr/ERROR:  canceling statement due to user request/,
		"parse thread $thread: pg_cancel_backend stops it");
	is($s->run('SELECT 1'), '1', "parse thread $thread: the session goes on");

	# DROP DATABASE waits for every backend to absorb its barrier
	psql("DROP DATABASE IF EXISTS iceml_ingest_stop_other", db => 'postgres');
	psql("CREATE DATABASE iceml_ingest_stop_other", db => 'postgres');
	$s->send($ingest);
	ok(running($s->{backend}), "parse thread $thread: the ingest runs again");
	my ($rc, $out) = psql_t("DROP DATABASE iceml_ingest_stop_other", 'postgres');
	is($rc, 0, "parse thread $thread: DROP DATABASE of another database is not blocked") or diag($out);
	psql("SELECT pg_cancel_backend($s->{backend})");
	like($s->result, qr/ERROR:  canceling statement/, "parse thread $thread: cancelled again");

	$s->run("SET statement_timeout = '200ms'");
	like($s->run($ingest), qr/ERROR:  canceling statement due to statement timeout/,
		"parse thread $thread: statement_timeout stops it");
	$s->run('RESET statement_timeout');

	$s->send($ingest);
	ok(running($s->{backend}), "parse thread $thread: the ingest runs a third time");
	psql("SELECT pg_terminate_backend($s->{backend})");
	like($s->result, qr/FATAL:  terminating connection due to administrator command/,
		"parse thread $thread: pg_terminate_backend ends it");
	is(poll("SELECT count(*) FROM pg_stat_activity WHERE pid = $s->{backend}", qr/^0$/, 60), '0',
		"parse thread $thread: the backend is gone");
	$s->close;
}
unlink $blanks;

# ---- two quarantine loads of the same ids ----------------------------------
my $jsonl = "$FindBin::Bin/../data/statoil_small.jsonl";
my $a = Session->new($db);
my $b = Session->new($db);
$a->run('BEGIN');
is($a->run("SELECT read, inserted, quarantined FROM iceml.ingest_statoil('iceml_fs.chips_1', '$jsonl', 'quarantine')"),
	'3|3|0', 'the first quarantine load inserts its records');
$b->send("SELECT read, inserted, quarantined FROM iceml.ingest_statoil('iceml_fs.chips_1', '$jsonl', 'quarantine')");
is(poll("SELECT count(*) FROM pg_locks WHERE pid = $b->{backend} AND NOT granted", qr/^1$/, 60), '1',
	'the second waits for the first');
$a->run('COMMIT');
is($b->result, '3|0|3', 'the second quarantines the duplicates instead of failing with 23505');
is(psql(q{SELECT string_agg(DISTINCT sqlstate || ' ' || (reason LIKE 'a row with id % already exists in iceml_fs.chips_1')::text, ',')
            FROM iceml.quarantine WHERE feature_group = 'iceml_fs.chips_1'::regclass}),
	'23505 true', 'each duplicate is quarantined as one');
is(psql('SELECT count(*) FROM iceml_fs.chips_1'), '3', 'the rows are there once');
$a->close;
$b->close;

psql("DROP DATABASE $db", db => 'postgres');
done_testing();
