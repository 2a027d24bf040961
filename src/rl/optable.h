/*
 * optable.h — the machinery behind a command's option table, shared by
 * `iapo train` (rl/options.c) and `iapo sft` (rl/sft_run.c): one table of
 * iapo_opt_def rows (kebab-case name, type, field offset, default, range,
 * --help line) describes a plain C struct of options, and these functions
 * parse text and JSON into it, write it back as JSON, and print --help from
 * it, so a command's parsing, config file and help can never disagree.
 *
 * Where the two commands differ, the iapo_optable descriptor says so:
 * aliases (sft's TRL short forms), how strings are owned (train: each field
 * an iapo_strdup copy; sft: fields borrow, strings set here are kept on a
 * list freed at once, so a caller may point fields at its own strings), the
 * width of --help's first column, and the wording of a few messages, kept
 * as each command has always printed them.
 *
 * Errors: IAPO_ERR_ARG for what a user wrote wrong (unknown option or key,
 * bad value, --config without a value), IAPO_ERR_IO / FORMAT for files that
 * cannot be read. Not here: what the options mean, cross-option checks
 * (each command's resolve/check step).
 */
#ifndef IAPO_RL_OPTABLE_H
#define IAPO_RL_OPTABLE_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "iapo.h"

typedef enum { IAPO_OPT_STR, IAPO_OPT_INT, IAPO_OPT_NUM, IAPO_OPT_FLAG, IAPO_OPT_ENUM } iapo_opt_type;

/* One option. Field types: STR/ENUM char * (or const char *), INT long,
 * NUM double, FLAG int. */
typedef struct {
	const char *name;
	iapo_opt_type type;
	size_t off;          /* offsetof the field in the options struct */
	const char *dflt;    /* text form; NULL: unset (strings) */
	double lo, hi;       /* INT, NUM: accepted range */
	const char *choices; /* ENUM: "a|b|c" */
	const char *arg;     /* metavariable in --help */
	const char *help;
	const char *group;   /* non-NULL on the first option of a --help section */
} iapo_opt_def;

/* owned_off's value when every string field owns an iapo_strdup copy. */
#define IAPO_OPT_STRDUP ((size_t)-1)

typedef struct {
	const char *cmd;                    /* "train": messages say 'iapo train --help' */
	const iapo_opt_def *opts;
	size_t n;
	const char *const (*aliases)[2];    /* {other spelling, option name}; may be NULL */
	size_t n_aliases;
	size_t size;                        /* sizeof the options struct */
	size_t given_off;                   /* unsigned char given[n or more]: set explicitly */
	size_t owned_off;                   /* IAPO_OPT_STRDUP, or offsetof a void * list head
					     * (string fields borrow; set strings are kept there) */
	int help_width;                     /* --help: width of the "--name ARG" column */
	int enum_as_list;                   /* bad enum: "expected one of a|b|c" (else "a, b or c") */
	int set_names_help;                 /* iapo_optable_set's unknown-option error adds
					     * "(see 'iapo CMD --help')" */
	int early_conflict;                 /* from_args refuses --resume with --overwrite before
					     * reading any file */
} iapo_optable;

/* Index of option `name` (kebab or snake case, or an alias), -1 if none. */
int iapo_optable_find(const iapo_optable *t, const char *name);
/* 1 if `name` is a flag, 0 if it takes a value, -1 if there is no such option. */
int iapo_optable_is_flag(const iapo_optable *t, const char *name);
/* 1 if option `name` was given explicitly (any source). */
int iapo_optable_given(const iapo_optable *t, const void *o, const char *name);

/* Zeroes *o and fills the table's defaults (strings: owned copies with
 * IAPO_OPT_STRDUP, else borrowed from the table). NOMEM only. */
iapo_status iapo_optable_default(const iapo_optable *t, void *o);
/* Frees what the options own (string copies or the list); fields set to NULL. */
void iapo_optable_free(const iapo_optable *t, void *o);
/* Deep copy for IAPO_OPT_STRDUP tables (dst overwritten, not freed first). */
iapo_status iapo_optable_copy(const iapo_optable *t, void *dst, const void *src);

/* Sets option `name` from text (a flag takes NULL/"true"/"false"/"1"/"0").
 * Messages name it "--name". */
iapo_status iapo_optable_set(const iapo_optable *t, void *o, const char *name, const char *value);
/* Applies a JSON object of options; all or nothing (*o unchanged on error). */
iapo_status iapo_optable_apply_json(const iapo_optable *t, void *o, const cJSON *obj, const char *file);
/* Reads a JSON file of options and applies it. */
iapo_status iapo_optable_load(const iapo_optable *t, void *o, const char *path);
/* The command line (argv[0] = the command name): with --resume,
 * RUN_DIR/config.json first (RUN_DIR from --out, which must exist), then
 * --config FILE, then every other option in order. *help set on -h/--help,
 * nothing else done. */
iapo_status iapo_optable_from_args(const iapo_optable *t, void *o, int argc, char **argv, int *help);

/* Every option but resume/overwrite, in table order, kebab-case keys. NULL
 * on allocation failure. */
cJSON *iapo_optable_to_json(const iapo_optable *t, const void *o);
/* One --help line per option with its default, section headers between. */
void iapo_optable_help(const iapo_optable *t, FILE *f);

#endif
