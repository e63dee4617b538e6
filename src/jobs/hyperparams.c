/*
 * hyperparams.c - the one parser of training hyperparameters.
 *
 * Every hyperparameter is a row of the table below: its name, kind, range
 * and where its value goes.  iceml.train(), iceml.tune() and
 * iceml.ablation_study() resolve a run's hyperparameters here when they
 * queue it (each fault 22023, naming the key and the value, with the range
 * as a hint), and the training worker parses the stored, resolved object
 * here again into the engine's IcemlTrainConfig and its own settings.
 *
 * Defaults: the engine's fields start from iceml_train_config_defaults()
 * (src/nn/trainer.c, the only place they are written); the table gives
 * only the defaults of what the engine does not know (epochs, threads,
 * channels, deploy, ...).  A resolved object is the defaults overlaid with
 * what the caller gave, as given (a learning rate keeps its decimal form).
 */
#include "postgres.h"

#include <math.h>
#include <float.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"

#include "iceml.h"
#include "iceml_worker.h"

PG_FUNCTION_INFO_V1(iceml_resolve_hyperparams);
extern Datum iceml_max_train_threads(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(iceml_tunable_hyperparameters);

typedef enum HpKind
{
	HP_INT,						/* a whole number in [lo, hi] */
	HP_REAL,					/* a number in lo..hi, ends open or closed */
	HP_CHOICE,					/* one of names[] (stored as its index) */
	HP_BOOL,
	HP_CHANNELS					/* column names (IcemlRunConfig.channels) */
} HpKind;

typedef enum HpField
{
	F_NONE,
	F_INT,						/* int at offset */
	F_FLOAT,					/* float at offset */
	F_U64						/* uint64_t at offset */
} HpField;

typedef struct Hyperparam
{
	const char *name;
	HpKind		kind;
	double		lo,
				hi;
	bool		lo_open,
				hi_open;
	const char *const *names;	/* HP_CHOICE: NULL-terminated */
	const char *noun;			/* HP_CHOICE: "unknown <noun> <value>", or NULL */
	const char *dflt;			/* JSON; NULL: the engine's default */
	bool		tunable;		/* may be a search space parameter */
	HpField		field;
	size_t		offset;			/* in IcemlRunConfig */
} Hyperparam;

static const char *const optimizers[] = {"sgd", "adam", NULL};	/* IcemlOptimizer */
static const char *const schedules[] = {"constant", "step", "cosine", NULL};	/* IcemlSchedule */
/* IcemlInit: the engine names its schemes (filled in at first use) */
static const char *inits[ICEML_INIT_GLOROT_UNIFORM + 2];
static const char *const deploys[] = {"if_better", "always", "never", NULL};	/* IcemlDeploy */

#define RC(f) offsetof(IcemlRunConfig, f)
#define TC(f) offsetof(IcemlRunConfig, train) + offsetof(IcemlTrainConfig, f)

/*
 * In the order they are checked: "warmup_epochs" is bounded by "epochs",
 * and "threads" by the server (its hi is filled in at run time).
 */
static const Hyperparam hyperparams[] = {
	{"epochs", HP_INT, 1, 100000, false, false, NULL, NULL, "20", true, F_INT, TC(epochs)},
	{"batch_size", HP_INT, 1, 65536, false, false, NULL, NULL, NULL, true, F_INT, TC(batch_size)},
	{"learning_rate", HP_REAL, 0, 10, true, false, NULL, NULL, NULL, true, F_FLOAT, TC(learning_rate)},
	{"optimizer", HP_CHOICE, 0, 0, false, false, optimizers, "optimizer", NULL, true, F_INT, TC(optimizer)},
	{"seed", HP_INT, 0, 2147483647, false, false, NULL, NULL, NULL, true, F_U64, TC(seed)},
	{"threads", HP_INT, 1, 0, false, false, NULL, NULL, NULL, false, F_INT, RC(threads)},
	{"augment", HP_BOOL, 0, 0, false, false, NULL, NULL, NULL, true, F_INT, TC(augment)},
	{"early_stopping_patience", HP_INT, 0, 100000, false, false, NULL, NULL, "0", true, F_INT, RC(patience)},
	{"channels", HP_CHANNELS, 0, 0, false, false, NULL, NULL, "[\"band_1\", \"band_2\", \"band_avg\"]", false, F_NONE, 0},
	{"deploy", HP_CHOICE, 0, 0, false, false, deploys, NULL, "\"if_better\"", false, F_INT, RC(deploy)},
	{"momentum", HP_REAL, 0, 1, false, true, NULL, NULL, NULL, true, F_FLOAT, TC(momentum)},
	{"weight_decay", HP_REAL, 0, 1, false, false, NULL, NULL, NULL, true, F_FLOAT, TC(weight_decay)},
	{"checkpoint_every", HP_INT, 0, 100000, false, false, NULL, NULL, "1", false, F_INT, RC(checkpoint_every)},
	{"init", HP_CHOICE, 0, 0, false, false, inits, "initialisation", NULL, true, F_INT, RC(init)},
	{"lr_schedule", HP_CHOICE, 0, 0, false, false, schedules, "learning-rate schedule", NULL, true, F_INT, TC(schedule)},
	{"warmup_epochs", HP_REAL, 0, 0, false, false, NULL, NULL, NULL, true, F_FLOAT, TC(warmup_epochs)},
	{"lr_step_epochs", HP_INT, 1, 100000, false, false, NULL, NULL, NULL, true, F_INT, TC(step_epochs)},
	{"lr_step_gamma", HP_REAL, 0, 1, true, false, NULL, NULL, NULL, true, F_FLOAT, TC(step_gamma)},
};

StaticAssertDecl(sizeof(IcemlOptimizer) == sizeof(int) && sizeof(IcemlSchedule) == sizeof(int),
				 "enum fields are written as int");

/* jsonb_typeof's word for a document */
static const char *
DocumentType(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	return JsonbTypeName(&v);
}

/* iceml._max_train_threads(), the bound of "threads" (src/limits.c) */
static int
MaxTrainThreads(void)
{
	LOCAL_FCINFO(fc, 0);

	InitFunctionCallInfoData(*fc, NULL, 0, InvalidOid, NULL, NULL);
	return DatumGetInt32(iceml_max_train_threads(fc));
}

/* The shortest decimal that reads back as the same float: 0.001, not 0.00100000005. */
static char *
FloatText(float v)
{
	char	   *shortest = NULL;

	/* plain decimals where they read back (10, not 1e+01) */
	for (int digits = 1; digits <= FLT_DECIMAL_DIG; digits++)
	{
		char	   *s = psprintf("%.*g", digits, (double) v);

		if (strtof(s, NULL) != v)
			continue;
		if (strchr(s, 'e') == NULL)
			return s;
		if (shortest == NULL)
			shortest = s;
	}
	return shortest ? shortest : psprintf("%.9g", (double) v);
}

/* The default of `hp` as JSON text, from the table or the engine's defaults. */
static char *
DefaultText(const Hyperparam *hp, const IcemlRunConfig *engine)
{
	const char *at = (const char *) engine + hp->offset;
	int			i;

	if (hp->dflt)
		return pstrdup(hp->dflt);
	if (strcmp(hp->name, "threads") == 0)
		return psprintf("%d", iceml_train_threads);
	if (strcmp(hp->name, "init") == 0)
		return psprintf("\"%s\"", iceml_init_scheme_name(ICEML_INIT_DEFAULT));
	switch (hp->field)
	{
		case F_INT:
			memcpy(&i, at, sizeof(int));
			if (hp->kind == HP_CHOICE)
				return psprintf("\"%s\"", hp->names[i]);
			if (hp->kind == HP_BOOL)
				return pstrdup(i ? "true" : "false");
			return psprintf("%d", i);
		case F_FLOAT:
			{
				float		f;

				memcpy(&f, at, sizeof(float));
				return FloatText(f);
			}
		case F_U64:
			{
				uint64_t	u;

				memcpy(&u, at, sizeof(u));
				return psprintf(UINT64_FORMAT, (uint64) u);
			}
		case F_NONE:
			break;
	}
	elog(ERROR, "iceml: hyperparameter \"%s\" has no default", hp->name);
	return NULL;				/* keep the compiler quiet */
}

/* A JSON value as the messages print it: "fast", 2.5, [null, "a"]. */
static char *
ValueText(JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

static JsonbValue *
Field(Jsonb *obj, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
}

static double
NumberOf(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

static char *
RangeText(const Hyperparam *hp, double hi)
{
	return psprintf("%c%s, %s%c", hp->lo_open ? '(' : '[', FloatText((float) hp->lo),
					FloatText((float) hi), hp->hi_open ? ')' : ']');
}

/* "a", "b" or "c" */
static char *
ChoicesText(const char *const *names)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; names[i]; i++)
		appendStringInfo(&s, "%s\"%s\"", i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
	return s.data;
}

static void
SetField(IcemlRunConfig *cfg, const Hyperparam *hp, double num, int i)
{
	char	   *at = (char *) cfg + hp->offset;

	switch (hp->field)
	{
		case F_INT:
			memcpy(at, &i, sizeof(int));
			break;
		case F_FLOAT:
			{
				float		f = (float) num;

				memcpy(at, &f, sizeof(float));
				break;
			}
		case F_U64:
			{
				uint64_t	u = (uint64_t) num;

				memcpy(at, &u, sizeof(u));
				break;
			}
		case F_NONE:
			break;
	}
}

/*
 * The real[] columns of a dataset; a channel is one of them, or band_avg
 * computed from band_1 and band_2.
 */
static void
CheckChannels(JsonbValue *v, Oid dataset, IcemlRunConfig *cfg)
{
	char	   *text = ValueText(v);
	List	   *cols = NIL;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	ListCell   *lc;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyperparameter \"channels\" must be a non-empty array of column names, not %s", text),
				 errhint("For example [\"band_1\", \"band_2\", \"band_avg\"].")));
	cfg->channels = NIL;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hyperparameter \"channels\" must name columns as strings, not %s", text),
					 errhint("For example [\"band_1\", \"band_2\", \"band_avg\"].")));
		name = pnstrdup(e.val.string.val, e.val.string.len);
		foreach(lc, cfg->channels)
			if (strcmp(lfirst(lc), name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("hyperparameter \"channels\" names a column twice: %s", text)));
		cfg->channels = lappend(cfg->channels, name);
	}
	if (!OidIsValid(dataset))
		return;

	for (AttrNumber a = 1;; a++)
	{
		char	   *col = get_attname(dataset, a, true);

		if (col == NULL)
			break;				/* past the last column (dropped ones have no type) */
		if (get_atttype(dataset, a) == FLOAT4ARRAYOID)
			cols = lappend(cols, col);
	}
	foreach(lc, cfg->channels)
	{
		const char *ch = lfirst(lc);
		bool		found = false;
		bool		b1 = false,
					b2 = false;
		ListCell   *c;
		StringInfoData all;

		initStringInfo(&all);
		foreach(c, cols)
		{
			found |= strcmp(lfirst(c), ch) == 0;
			b1 |= strcmp(lfirst(c), "band_1") == 0;
			b2 |= strcmp(lfirst(c), "band_2") == 0;
			appendStringInfo(&all, "%s%s", all.len ? ", " : "", (char *) lfirst(c));
		}
		if (!found && !(strcmp(ch, "band_avg") == 0 && b1 && b2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown channel \"%s\"", ch),
					 errdetail("Training dataset %s has the real[] columns %s.",
							   DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(dataset))),
							   all.len ? all.data : "(none)"),
					 errhint("band_avg is computed from band_1 and band_2 when it is not a column.")));
	}
}

/*
 * Resolve hyperparameters: refuse unknown keys and bad values (22023), fill
 * in the defaults, and parse the result into *cfg.  `dataset` (or
 * InvalidOid) is checked for the channels.  Returns the resolved object.
 */
Jsonb *
ResolveHyperparams(Jsonb *given, Oid dataset, IcemlRunConfig *cfg)
{
	IcemlRunConfig engine;
	StringInfoData d;
	Jsonb	   *hp;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	double		epochs = 0;

	if (inits[0] == NULL)
		for (int i = 0; i <= ICEML_INIT_GLOROT_UNIFORM; i++)
			inits[i] = iceml_init_scheme_name((IcemlInit) i);
	if (given == NULL)
		given = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	if (!JB_ROOT_IS_OBJECT(given))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyperparams must be a JSON object, not %s", DocumentType(given)),
				 errhint("For example {\"epochs\": 10, \"learning_rate\": 0.001}.")));

	/* unknown keys first: a misspelt key must not pass as a default */
	it = JsonbIteratorInit(&given->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (size_t i = 0; i < lengthof(hyperparams); i++)
			known |= strlen(hyperparams[i].name) == (size_t) v.val.string.len &&
				strncmp(hyperparams[i].name, v.val.string.val, v.val.string.len) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown hyperparameter \"%s\"", pnstrdup(v.val.string.val, v.val.string.len)),
					 errhint("Known hyperparameters: %s.", HyperparameterNames(false))));
	}

	/* the defaults, overlaid with what was given */
	memset(&engine, 0, sizeof(engine));
	iceml_train_config_defaults(&engine.train);
	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	for (size_t i = 0; i < lengthof(hyperparams); i++)
		appendStringInfo(&d, "%s\"%s\": %s", i ? ", " : "", hyperparams[i].name,
						 DefaultText(&hyperparams[i], &engine));
	appendStringInfoChar(&d, '}');
	hp = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											DirectFunctionCall1(jsonb_in, CStringGetDatum(d.data)),
											JsonbPGetDatum(given)));

	*cfg = engine;
	for (size_t i = 0; i < lengthof(hyperparams); i++)
	{
		const Hyperparam *p = &hyperparams[i];
		JsonbValue *val = Field(hp, p->name);
		double		num = val->type == jbvNumeric ? NumberOf(val) : NAN;
		double		hi = p->hi;
		int			choice = 0;

		switch (p->kind)
		{
			case HP_INT:
				if (strcmp(p->name, "threads") == 0)
					hi = MaxTrainThreads();
				if (isnan(num) || num != floor(num) || num < p->lo || num > hi)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("hyperparameter \"%s\" must be an integer between %.0f and %.0f, not %s",
									p->name, p->lo, hi, ValueText(val)),
							 errhint("Give \"%s\" a whole number from %.0f to %.0f.", p->name, p->lo, hi)));
				choice = (int) num;
				break;
			case HP_REAL:
				if (strcmp(p->name, "warmup_epochs") == 0)
				{
					/* bounded by the run's length */
					if (isnan(num) || num < 0 || num > epochs)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("hyperparameter \"warmup_epochs\" must be a number between 0 and \"epochs\" (%.0f), not %s",
										epochs, ValueText(val)),
								 errhint("Warm-up takes at most the whole run.")));
					break;
				}
				if (isnan(num) || (p->lo_open ? num <= p->lo : num < p->lo) ||
					(p->hi_open ? num >= hi : num > hi))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("hyperparameter \"%s\" must be a number in %s, not %s",
									p->name, RangeText(p, hi), ValueText(val)),
							 errhint("Give \"%s\" a number in %s.", p->name, RangeText(p, hi))));
				break;
			case HP_CHOICE:
				choice = -1;
				if (val->type == jbvString)
					for (int k = 0; p->names[k]; k++)
						if (strlen(p->names[k]) == (size_t) val->val.string.len &&
							strncmp(p->names[k], val->val.string.val, val->val.string.len) == 0)
							choice = k;
				if (choice < 0 && p->noun)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown %s %s", p->noun, ValueText(val)),
							 errhint("Use %s for \"%s\".", ChoicesText(p->names), p->name)));
				if (choice < 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("hyperparameter \"%s\" must be %s, not %s",
									p->name, ChoicesText(p->names), ValueText(val))));
				break;
			case HP_BOOL:
				if (val->type != jbvBool)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("hyperparameter \"%s\" must be true or false, not %s",
									p->name, ValueText(val))));
				choice = val->val.boolean ?
					(ICEML_AUG_FLIP_H | ICEML_AUG_FLIP_V | ICEML_AUG_ROT90) : 0;
				break;
			case HP_CHANNELS:
				CheckChannels(val, dataset, cfg);
				break;
		}
		if (strcmp(p->name, "epochs") == 0)
			epochs = num;
		SetField(cfg, p, num, choice);
	}
	return hp;
}

/* The hyperparameters' names, comma-separated; `tunable`: those a study may search. */
char *
HyperparameterNames(bool tunable)
{
	StringInfoData s;

	initStringInfo(&s);
	for (size_t i = 0; i < lengthof(hyperparams); i++)
		if (!tunable || hyperparams[i].tunable)
			appendStringInfo(&s, "%s%s", s.len ? ", " : "", hyperparams[i].name);
	return s.data;
}

/*
 * iceml._resolve_hyperparams(hyperparams jsonb, training_dataset regclass)
 * -> the object with defaults filled in, or 22023 naming the fault.
 */
Datum
iceml_resolve_hyperparams(PG_FUNCTION_ARGS)
{
	IcemlRunConfig cfg;

	PG_RETURN_JSONB_P(ResolveHyperparams(PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0),
										 PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1), &cfg));
}

/* iceml._tunable_hyperparameters() -> text[]: what a search space may set. */
Datum
iceml_tunable_hyperparameters(PG_FUNCTION_ARGS)
{
	Datum	   *names = palloc(sizeof(Datum) * lengthof(hyperparams));
	int			n = 0;

	for (size_t i = 0; i < lengthof(hyperparams); i++)
		if (hyperparams[i].tunable)
			names[n++] = CStringGetTextDatum(hyperparams[i].name);
	PG_RETURN_ARRAYTYPE_P(construct_array_builtin(names, n, TEXTOID));
}
