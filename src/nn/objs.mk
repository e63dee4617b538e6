# The CNN engine: plain C, no PostgreSQL headers; linked into iceml.so and
# built on its own by test/unit and test/bench.  What lives where:
#   spec.c spec_canonical.c builtin.c architecture specs, written back, built in
#   net.c trainer.c memory.c          nets, training, models (the API)
#   plan.c                            memory plans and their kernel choices
#   engine.c                          the forward and backward passes
#   layers_*.c                        one forward/backward pair per layer
#   kernels.c kernels_*.c             the kernel sets behind one table
#   blas.c pool.c                     OpenBLAS (core, split sgemm), threads
#   side.c views.c                    side inputs, test-time augmentation's views
NN_OBJS = \
	src/nn/spec.o \
	src/nn/spec_canonical.o \
	src/nn/builtin.o \
	src/nn/net.o \
	src/nn/trainer.o \
	src/nn/memory.o \
	src/nn/plan.o \
	src/nn/engine.o \
	src/nn/layers_conv.o \
	src/nn/layers_pool.o \
	src/nn/layers_dense.o \
	src/nn/layers_norm.o \
	src/nn/layers_simple.o \
	src/nn/kernels.o \
	src/nn/kernels_generic.o \
	src/nn/kernels_avx2.o \
	src/nn/kernels_avx512.o \
	src/nn/blas.o \
	src/nn/pool.o \
	src/nn/side.o \
	src/nn/views.o
