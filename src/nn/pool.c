/*
 * pool.c - the engine's threads: created once, woken for each parallel for.
 *
 * nn_parallel_for(n, ...) cuts [0, n) into one contiguous chunk per thread
 * (iceml_nn_set_threads); the calling thread runs chunk 0 and the pool's
 * workers the others, then the caller waits for them.  Workers are made on
 * the first parallel for that needs them and sleep on a condition variable
 * between calls; they are joined at exit (or nn_pool_shutdown).
 *
 * Safe inside a PostgreSQL backend or background worker: workers are
 * created with every signal blocked (pthread_sigmask around
 * pthread_create), so the server's signals always reach the backend's own
 * thread; workers run only the engine's plain C and never call back into
 * the server (the interrupt check runs on the calling thread, between
 * layers, when no chunk is running).  A child forked from a process with
 * workers (the postmaster never runs the engine; this is for safety) starts
 * with none.  One parallel for runs at a time; a second caller (another
 * thread using another net) or a nested call runs its loop itself.
 * Results never depend on who runs a chunk.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn_internal.h"

#define POOL_MAX 64

static int	nn_threads = 1;

static pthread_mutex_t pool_use = PTHREAD_MUTEX_INITIALIZER;	/* one caller */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;	/* the state */
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static pthread_t pool_tid[POOL_MAX];
static uint64_t pool_born[POOL_MAX];	/* the generation a worker was made in */
static int	pool_workers;		/* workers 1 .. pool_workers exist */
static int	pool_stopping;
static uint64_t pool_generation;	/* one per parallel for */
static int	pool_pending;		/* chunks of the current call not done */
static NnRangeFn pool_fn;
static void *pool_arg;
static size_t pool_n;
static int	pool_parts;		/* the split: chunks of the current call */
static int	pool_active;		/* workers 1 .. pool_active take one each */
static __thread int pool_in_worker;

void
nn_set_work_threads(int threads)
{
	nn_threads = threads < 1 ? 1 : (threads > POOL_MAX ? POOL_MAX : threads);
}

int
nn_work_threads(void)
{
	return nn_threads;
}

static void
run_chunk(NnRangeFn fn, void *arg, size_t n, int parts, int k)
{
	size_t		begin = n * (size_t) k / (size_t) parts,
				end = n * (size_t) (k + 1) / (size_t) parts;

	if (end > begin)
		fn(arg, begin, end);
}

static void *
pool_worker(void *p)
{
	int			me = (int) (intptr_t) p;
	uint64_t	seen;

	pool_in_worker = 1;
	pthread_mutex_lock(&pool_lock);
	seen = pool_born[me];		/* calls from then on are its to take */
	for (;;)
	{
		NnRangeFn	fn;
		void	   *arg;
		size_t		n;
		int			parts;

		while (pool_generation == seen && !pool_stopping)
			pthread_cond_wait(&pool_wake, &pool_lock);
		if (pool_stopping)
			break;
		seen = pool_generation;
		if (me > pool_active)
			continue;
		fn = pool_fn;
		arg = pool_arg;
		n = pool_n;
		parts = pool_parts;
		pthread_mutex_unlock(&pool_lock);
		run_chunk(fn, arg, n, parts, me);
		pthread_mutex_lock(&pool_lock);
		if (--pool_pending == 0)
			pthread_cond_signal(&pool_done);
	}
	pthread_mutex_unlock(&pool_lock);
	return NULL;
}

/* workers 1 .. want - 1, as many as can be made; under pool_use */
static void
pool_grow(int want)
{
	sigset_t	all,
				old;

	if (want > POOL_MAX)
		want = POOL_MAX;
	if (pool_workers >= want - 1)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&pool_lock);
	while (pool_workers < want - 1)
	{
		int			k = pool_workers + 1;

		pool_born[k] = pool_generation;
		if (pthread_create(&pool_tid[k], NULL, pool_worker, (void *) (intptr_t) k) != 0)
			break;
		pool_workers = k;
	}
	pthread_mutex_unlock(&pool_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void
nn_parallel_for(size_t n, size_t min_chunk, NnRangeFn fn, void *arg)
{
	int			t = nn_threads,
				have;

	if (t > 1 && n / (size_t) t < min_chunk)
		t = (int) (n / (min_chunk ? min_chunk : 1));
	if (t <= 1 || pool_in_worker || pthread_mutex_trylock(&pool_use) != 0)
	{
		fn(arg, 0, n);
		return;
	}
	pool_grow(t);
	pthread_mutex_lock(&pool_lock);
	have = pool_workers < t - 1 ? pool_workers : t - 1;
	pool_fn = fn;
	pool_arg = arg;
	pool_n = n;
	pool_parts = t;
	pool_active = have;			/* workers take chunks 1 .. have */
	pool_pending = have;
	pool_generation++;
	pthread_cond_broadcast(&pool_wake);
	pthread_mutex_unlock(&pool_lock);

	/*
	 * Chunks are cut for t threads whoever runs them: chunk 0 here, and
	 * those of workers that could not be made after ours.
	 */
	if (have == t - 1)
		run_chunk(fn, arg, n, t, 0);
	else
	{
		/* fewer workers than asked: the split stays the one of t threads */
		for (int k = 0; k < t; k++)
			if (k == 0 || k > have)
				run_chunk(fn, arg, n, t, k);
	}
	pthread_mutex_lock(&pool_lock);
	while (pool_pending > 0)
		pthread_cond_wait(&pool_done, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	pthread_mutex_unlock(&pool_use);
}

/* Join every worker; the next parallel for makes them again. */
void
nn_pool_shutdown(void)
{
	pthread_mutex_lock(&pool_use);
	pthread_mutex_lock(&pool_lock);
	pool_stopping = 1;
	pthread_cond_broadcast(&pool_wake);
	pthread_mutex_unlock(&pool_lock);
	for (int k = 1; k <= pool_workers; k++)
		pthread_join(pool_tid[k], NULL);
	pthread_mutex_lock(&pool_lock);
	pool_workers = 0;
	pool_stopping = 0;
	pthread_mutex_unlock(&pool_lock);
	pthread_mutex_unlock(&pool_use);
}

int
nn_pool_size(void)
{
	return pool_workers + 1;
}

/* a forked child has the state but not the threads */
static void
pool_after_fork_child(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;

	pool_use = m;
	pool_lock = m;
	pool_wake = c;
	pool_done = c;
	pool_workers = 0;
	pool_stopping = 0;
}

/* once, from nn_init */
void
nn_pool_init(void)
{
	pthread_atfork(NULL, NULL, pool_after_fork_child);
	atexit(nn_pool_shutdown);
}
