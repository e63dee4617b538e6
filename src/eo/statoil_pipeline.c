/*
 * statoil_pipeline.c - the Statoil reader run in a parse thread that fills
 * a ring of records ahead of the backend, or inline when threads are off.
 *
 * Plain C on libc and pthreads only.  Every wait of the consumer has a
 * deadline and the thread asks a stop flag before every chunk it reads, so
 * a stopped ingest never waits for the input.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iceml_statoil.h"

#define PIPELINE_SLOTS		4

/* ----------------------------------------------------------------
 * The pipeline
 * ---------------------------------------------------------------- */

struct StatoilPipeline
{
	StatoilReader *reader;		/* owned: freed with the pipeline */
	bool		threaded;
	pthread_t	thread;
	pthread_mutex_t lock;
	pthread_cond_t filled;		/* a slot was filled, or the thread ended */
	pthread_cond_t freed;		/* a slot was released, or stop */
	bool		stop;			/* under lock; also read by pipeline_stopping() */
	bool		done;			/* the producer has returned EOF or FATAL */
	bool		exited;			/* the thread is about to return */
	bool		orphaned;		/* nobody waits: the thread frees everything */
	StatoilRecord slots[PIPELINE_SLOTS];
	int64_t		produced;		/* slots filled so far */
	int64_t		consumed;		/* slots handed to the consumer */
	int64_t		released;		/* slots given back */
};

static void
pipeline_free(StatoilPipeline *pipe)
{
	for (int i = 0; i < PIPELINE_SLOTS; i++)
		statoil_record_free(&pipe->slots[i]);
	statoil_reader_free(pipe->reader);
	pthread_mutex_destroy(&pipe->lock);
	pthread_cond_destroy(&pipe->filled);
	pthread_cond_destroy(&pipe->freed);
	free(pipe);
}

/* The reader's stop function in the parse thread, asked once per chunk */
static bool
pipeline_stopping(void *arg)
{
	StatoilPipeline *pipe = arg;

	return __atomic_load_n(&pipe->stop, __ATOMIC_ACQUIRE);
}

static void *
pipeline_main(void *arg)
{
	StatoilPipeline *pipe = arg;
	bool		orphaned;

	for (;;)
	{
		StatoilRecord *rec;
		StatoilStatus st;

		pthread_mutex_lock(&pipe->lock);
		while (!pipe->stop && pipe->produced - pipe->released >= PIPELINE_SLOTS)
			pthread_cond_wait(&pipe->freed, &pipe->lock);
		if (pipe->stop)
		{
			pthread_mutex_unlock(&pipe->lock);
			break;
		}
		rec = &pipe->slots[pipe->produced % PIPELINE_SLOTS];
		pthread_mutex_unlock(&pipe->lock);

		st = statoil_next(pipe->reader, rec);

		pthread_mutex_lock(&pipe->lock);
		pipe->produced++;
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			pipe->done = true;
		pthread_cond_signal(&pipe->filled);
		pthread_mutex_unlock(&pipe->lock);
		if (st == STATOIL_EOF || st == STATOIL_FATAL)
			break;
	}

	pthread_mutex_lock(&pipe->lock);
	pipe->exited = true;
	orphaned = pipe->orphaned;
	pthread_cond_broadcast(&pipe->filled);
	pthread_mutex_unlock(&pipe->lock);
	if (orphaned)
		pipeline_free(pipe);
	return NULL;
}

StatoilPipeline *
statoil_pipeline_start(StatoilReader *reader, bool threaded)
{
	StatoilPipeline *pipe = calloc(1, sizeof(StatoilPipeline));

	if (pipe == NULL)
	{
		statoil_reader_free(reader);
		return NULL;
	}
	pipe->reader = reader;
	pipe->threaded = threaded;
	pthread_mutex_init(&pipe->lock, NULL);
	pthread_cond_init(&pipe->filled, NULL);
	pthread_cond_init(&pipe->freed, NULL);
	if (threaded)
	{
		sigset_t	all;
		sigset_t	old;
		int			rc;

		statoil_reader_set_stop(reader, pipeline_stopping, pipe);
		/* the backend's signals must reach the backend's thread only */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&pipe->thread, NULL, pipeline_main, pipe);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
		{
			/* parse on demand instead */
			pipe->threaded = false;
			statoil_reader_set_stop(reader, NULL, NULL);
		}
	}
	return pipe;
}

/* An absolute CLOCK_REALTIME time ms milliseconds from now */
static struct timespec
deadline_in(int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L)
	{
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

StatoilRecord *
statoil_pipeline_next(StatoilPipeline *pipe, int timeout_ms)
{
	StatoilRecord *rec;
	struct timespec deadline;

	if (!pipe->threaded)
	{
		/* one slot, parsed on demand */
		rec = &pipe->slots[0];
		if (pipe->done)
			return rec;			/* EOF or FATAL again */
		if (statoil_next(pipe->reader, rec) != STATOIL_GOOD &&
			(rec->status == STATOIL_EOF || rec->status == STATOIL_FATAL))
			pipe->done = true;
		return rec;
	}
	deadline = deadline_in(timeout_ms);
	pthread_mutex_lock(&pipe->lock);
	while (pipe->consumed >= pipe->produced)
	{
		if (pthread_cond_timedwait(&pipe->filled, &pipe->lock, &deadline) == ETIMEDOUT &&
			pipe->consumed >= pipe->produced)
		{
			pthread_mutex_unlock(&pipe->lock);
			return NULL;
		}
	}
	rec = &pipe->slots[pipe->consumed % PIPELINE_SLOTS];
	/* the last record (EOF or FATAL) is handed out again and again */
	if (!(pipe->done && pipe->consumed + 1 == pipe->produced))
		pipe->consumed++;
	else
		pipe->consumed = pipe->produced - 1;
	pthread_mutex_unlock(&pipe->lock);
	return rec;
}

void
statoil_pipeline_release(StatoilPipeline *pipe, StatoilRecord *rec)
{
	if (!pipe->threaded || rec->status == STATOIL_EOF || rec->status == STATOIL_FATAL)
		return;
	pthread_mutex_lock(&pipe->lock);
	pipe->released++;
	pthread_cond_signal(&pipe->freed);
	pthread_mutex_unlock(&pipe->lock);
}

bool
statoil_pipeline_stop(StatoilPipeline *pipe, int timeout_ms)
{
	struct timespec deadline;
	bool		exited;

	if (pipe == NULL)
		return true;
	if (!pipe->threaded)
	{
		pipeline_free(pipe);
		return true;
	}
	deadline = deadline_in(timeout_ms);
	pthread_mutex_lock(&pipe->lock);
	__atomic_store_n(&pipe->stop, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&pipe->freed);
	while (!pipe->exited)
		if (pthread_cond_timedwait(&pipe->filled, &pipe->lock, &deadline) == ETIMEDOUT)
			break;
	exited = pipe->exited;
	if (!exited)
		pipe->orphaned = true;
	pthread_mutex_unlock(&pipe->lock);
	if (!exited)
	{
		/* the thread frees the pipeline and the reader when it returns */
		pthread_detach(pipe->thread);
		return false;
	}
	pthread_join(pipe->thread, NULL);
	pipeline_free(pipe);
	return true;
}
