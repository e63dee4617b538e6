/*
 * iceml.h - shared declarations of the iceml extension (PostgreSQL side).
 *
 * Each subsystem has an XxxInit() called once from _PG_init; the GUCs live in
 * src/iceml.c and are read by the subsystems through these variables.
 */
#ifndef ICEML_H
#define ICEML_H

#define ICEML_VERSION "0.1.0"

/* GUCs (see src/iceml.c for their meaning and limits) */
extern int	iceml_train_threads;
extern int	iceml_max_workers;
extern int	iceml_predict_threads;
extern double iceml_log_inferences;
extern int	iceml_max_model_mb;
extern int	iceml_train_memory_mb;

/* resource limits and the engine's interrupt check (src/limits.c) */
extern void LimitsInit(void);
extern void IcemlCheckSpecLimits(const char *name, const char *spec_json,
								 int batch_size, int64 images);
extern void IcemlEngineInterrupted(const char *what) pg_attribute_noreturn();

/* subsystem initialisation, from _PG_init */
extern void IngestInit(void);

#endif							/* ICEML_H */
