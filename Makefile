# iceml: PGXS build.
#
# Two commands for a newcomer (see README.md):  make demo   and   make test.
# Both install missing Debian packages first, so this file must parse before
# pg_config exists: the PGXS include is skipped until it does.

EXTENSION   = iceml
EXTVERSION  = 0.1.0

MODULE_big  = iceml
-include src/nn/objs.mk
OBJS = \
	src/iceml.o \
	src/catalog.o \
	src/jobs/worker.o \
	src/jobs/bgworker.o \
	src/jobs/supervisor.o \
	src/jobs/studies.o \
	src/jobs/hyperparams.o \
	src/jobs/train.o \
	src/jobs/run_record.o \
	src/jobs/runs.o \
	src/ingest/ingest.o \
	src/ingest/ingest_records.o \
	src/ingest/ingest_target.o \
	src/ingest/ingest_copy.o \
	src/eo/statoil_json.o \
	src/eo/statoil_record.o \
	src/eo/statoil_pipeline.o \
	src/featurestore/expectations.o \
	src/featurestore/expectations_check.o \
	src/featurestore/fs_types.o \
	src/featurestore/fs_json.o \
	src/featurestore/featurestore.o \
	src/featurestore/fs_commit.o \
	src/featurestore/fs_sql.o \
	src/featurestore/statistics.o \
	src/pgarray.o \
	src/featurestore/features.o \
	src/ingest/synthesize.o \
	src/plot.o \
	src/eo/sar.o \
	src/eo/synth.o \
	src/serving/predict.o \
	src/serving/model_cache.o \
	src/serving/score.o \
	src/serving/predict_input.o \
	src/serving/predict_batch.o \
	src/serving/monitor.o \
	src/serving/analysis.o \
	src/limits.o \
	src/jobs/pipeline.o \
	src/jobs/schedules.o \
	src/shard/shard.o \
	src/shard/shard_stats.o \
	src/shard/shard_predict.o \
	src/shard/shipped_model.o \
	src/shard/remote_trial.o \
	src/shard/node_trial.o \
	src/shard/trial_nodes.o \
	src/shard/trial_leftovers.o \
	src/shard/trial_conn.o \
	$(NN_OBJS)

# The install script is assembled from one file per topic of src/sql/, in
# name order; upgrade scripts (iceml--A--B.sql) would sit beside them.
# sql/ and expected/ hold pg_regress's inputs and expected output only.
DATA_built  = iceml--$(EXTVERSION).sql
DATA        = $(wildcard src/sql/iceml--*--*.sql)

# pg_regress: every sql/NN_name.sql, in order, against expected/NN_name.out.
REGRESS     = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/[0-9][0-9]_*.sql)))
REGRESS_OPTS = --inputdir=. --dbname=iceml_regress

PG_CPPFLAGS = -I$(CURDIR)/include
PG_CPPFLAGS += -I$(shell $(PG_CONFIG) --includedir 2>/dev/null)
# PostgreSQL's headers as system headers: -Wextra then judges iceml's code
# only (the headers themselves have unused parameters in inline functions).
PG_CPPFLAGS += -isystem $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
# -Werror is added by the test command (ICEML_STRICT=1) so that a newer
# compiler's new warning cannot break a user's plain `make install`.
PG_CFLAGS   = -Wall -Wextra -Wno-unused-parameter \
	$(if $(ICEML_STRICT),-Werror)
# libpq: src/shard/shard.c's connections to nodes (scale-out)
SHLIB_LINK += -lopenblas -ljson-c -lm -lpq

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
# The engine's loops (bias, activations, pooling, im2col) are written to be
# vectorised: -O3 makes a one-image forward pass 1.5x faster than -O2.
$(NN_OBJS) src/eo/sar.o: CFLAGS += -O3
# PGXS tracks no header dependencies: rebuild everything when a header changes
# (a struct that grew in a header must never meet an object built before).
$(OBJS): $(wildcard include/*.h src/*/*.h)
else
.DEFAULT_GOAL := all
all install installcheck:
	@echo "iceml: pg_config not found; run 'make test' or 'make demo' (they install the Debian packages), or install postgresql-server-dev-15" >&2
	@exit 1
endif

iceml--$(EXTVERSION).sql: $(sort $(wildcard src/sql/[0-9][0-9]_*.sql))
	cat $^ > $@

.PHONY: demo test unit bench psql stop fuzz
demo:
	@test/harness/demo.sh
test:
	@test/harness/run.sh
unit:
	$(MAKE) -C test/unit check
# libFuzzer targets under ASan + UBSan, FUZZ_SECONDS (60) each: test/fuzz/Makefile
FUZZ_SECONDS ?= 60
fuzz:
	@test/harness/deps.sh clang
	$(MAKE) -s -C test/fuzz fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
bench:
	@test/harness/bench.sh
psql:
	@test/harness/cluster.sh psql
stop:
	@test/harness/cluster.sh stop
