# The CNN engine: plain C, no PostgreSQL headers; linked into iceml.so and
# built on its own by test/unit and test/bench.
NN_OBJS = \
	src/nn/spec.o \
	src/nn/engine.o \
	src/nn/net.o \
	src/nn/trainer.o \
	src/nn/memory.o \
	src/nn/side.o
