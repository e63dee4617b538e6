/*
 * statoil_internal.h - what the files of the Statoil reader share
 * (statoil_json.c, statoil_record.c).  Not for use outside src/eo.
 */
#ifndef ICEML_STATOIL_INTERNAL_H
#define ICEML_STATOIL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "iceml_statoil.h"

#define STATOIL_ID_MAX		200		/* bytes of an id read from raw text */

/* lone UTF-16 surrogates in \u escapes: the scan of a record's bytes */
typedef enum EscState
{
	ESC_PLAIN,					/* not after a backslash */
	ESC_BACKSLASH,				/* after a backslash */
	ESC_HEX,					/* in the 4 hex digits of \u */
	ESC_NEED_BACKSLASH,			/* after a high surrogate: "\" must follow */
	ESC_NEED_U					/* ... then "u" */
} EscState;

typedef struct EscScan
{
	EscState	state;
	int			nhex;
	unsigned	code;
	unsigned	high;			/* a high surrogate waiting for its low half */
	bool		bad;
	unsigned	bad_code;		/* the lone surrogate */
} EscScan;

/* statoil_record.c */
extern void statoil_set_reason(StatoilRecord *rec, const char *fmt,...) __attribute__((format(printf, 2, 3)));
extern bool statoil_set_id(StatoilRecord *rec, const char *id, size_t len);
extern void statoil_id_from_raw(StatoilRecord *rec);
extern bool statoil_check_record(StatoilRecord *rec, json_object *obj);
extern void statoil_esc_reset(EscScan *es);
extern void statoil_esc_scan(EscScan *es, const char *p, size_t n);

#endif							/* ICEML_STATOIL_INTERNAL_H */
